"""Per-class test accuracy of each run, from the store: a run whose model never predicts some class is named in
the report (its mean accuracy can hide it), not only in its confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..keys import M
from ..tracking import RunRecord
from .render import column_label, method_label

COLUMNS = ["dataset", "noise_kind", "noise_rate", "method", "seed", "run_id", "classes", "worst_class", "worst_acc",
           "zero_classes"]


def class_accuracies(metrics: dict[str, float]) -> dict[int, float]:
    """``{k: accuracy}`` of the metrics ``test/acc_class/<k>`` a run logged at its end ({} for older runs)."""
    prefix = M.TEST_ACC_CLASS + "/"
    return {int(key[len(prefix):]): float(value) for key, value in metrics.items()
            if key.startswith(prefix) and key[len(prefix):].isdigit()}


def class_table(frame: pd.DataFrame, records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run of ``frame`` that logged per-class accuracies: its worst class (in %), and the classes
    it gets entirely wrong (0% of their test images right)."""
    metrics = {r.run_id: r.metrics for r in records}
    rows = []
    for _, run in frame.iterrows():
        per_class = class_accuracies(metrics.get(run["run_id"], {}))
        if not per_class:
            continue
        worst = min(per_class, key=lambda k: (per_class[k], k))
        rows.append({**{k: run[k] for k in ("dataset", "noise_kind", "noise_rate", "method", "seed", "run_id")},
                     "classes": len(per_class), "worst_class": worst, "worst_acc": 100 * per_class[worst],
                     "zero_classes": [k for k in sorted(per_class) if per_class[k] == 0]})
    return pd.DataFrame(rows, columns=COLUMNS)


def zero_class_lines(table: pd.DataFrame) -> list[str]:
    """One line per run that gets some class entirely wrong at its last epoch."""
    lines = []
    for _, r in table[table["zero_classes"].map(len) > 0].iterrows():
        names = ", ".join(str(k) for k in r["zero_classes"])
        lines.append(f"  {method_label(r['method'])} seed {r['seed']} ({r['dataset']}, "
                     f"{column_label(r['noise_kind'], r['noise_rate'])}): 0% test accuracy on class "
                     f"{names}: it never predicts {'it' if len(r['zero_classes']) == 1 else 'them'} right")
    return lines


def class_markdown(table: pd.DataFrame) -> str:
    """Every run's lowest per-class test accuracy at its last epoch, and the classes it gets entirely wrong."""
    lines = ["_Per-class test accuracy at the last epoch: each run's worst class, and the classes it never "
             "predicts right (a mean accuracy can hide them)._", "",
             "| dataset | noise | loss | seed | worst class | its accuracy % | classes at 0% |",
             "|---|---|---|---:|---:|---:|---|"]
    for _, r in table.iterrows():
        zero = ", ".join(str(k) for k in r["zero_classes"]) or "none"
        lines.append(f"| {r['dataset']} | {column_label(r['noise_kind'], r['noise_rate'])} | "
                     f"{method_label(r['method'])} | {r['seed']} | {r['worst_class']} | {r['worst_acc']:.1f} | {zero} |")
    return "\n".join(lines) + "\n"
