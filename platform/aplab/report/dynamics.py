"""Training dynamics from metric histories: the peak test accuracy, its epoch, the drop to the last epoch and
how much of the noise was memorised, per loss and noise (does a loss fit the wrong labels?)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd

from ..keys import M
from ..tracking import Tracker
from .render import column_label, method_label
from .tables import GROUP, sort_keys


def load_histories(tracker: Tracker, run_ids: Iterable[str], keys: Sequence[str]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{run_id: {key: [(epoch, value), ...]}}`` from the store, each history sorted by epoch."""
    return {run_id: {key: sorted(tracker.metric_history(run_id, key)) for key in keys} for run_id in run_ids}


def dynamics(frame: pd.DataFrame, histories: dict[str, dict[str, list[tuple[int, float]]]],
             order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (dataset, noise, method), means over seeds of: best test accuracy at any epoch, its epoch, the
    last-epoch accuracy, the drop between them, and the share of flipped samples predicted as their
    wrong label (memorised) at the last epoch, all in %. Shows overfitting to noisy labels at a glance."""
    rows = []
    for _, run in frame.iterrows():
        test = histories.get(run["run_id"], {}).get(M.TEST_ACC) or []
        memorised = histories.get(run["run_id"], {}).get(M.TRAIN_MEMORISED) or []
        if not test:
            continue
        peak_epoch, peak = max(test, key=lambda point: point[1])
        rows.append({**{k: run[k] for k in ("dataset", "noise_kind", "noise_rate", "method", "loss")},
                     "peak": 100 * peak, "peak_epoch": peak_epoch, "last": 100 * test[-1][1],
                     "drop": 100 * (peak - test[-1][1]),
                     "memorised": 100 * memorised[-1][1] if memorised else math.nan})
    columns = ["dataset", "noise_kind", "noise_rate", "method", "loss", "n", "peak", "peak_epoch", "last", "drop",
               "memorised"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    grouped = table.groupby(GROUP + ["loss"], sort=False, dropna=False)
    means = grouped[["peak", "peak_epoch", "last", "drop", "memorised"]].mean().reset_index()
    means.insert(5, "n", grouped.size().values)
    keyed = sort_keys(means, order).sort_values(["_d", "_k", "noise_rate", "_l", "method"], kind="stable")
    return keyed.drop(columns=["_d", "_k", "_l"]).reset_index(drop=True)[columns]


def dynamics_markdown(table: pd.DataFrame) -> str:
    """The dynamics table in Markdown: does a loss fit the wrong labels and lose test accuracy?"""
    lines = ["_Training dynamics (means over seeds): best test accuracy at any epoch and when, the last epoch's, "
             "the drop between them, and % of flipped training samples predicted as their wrong label at the end._",
             "", "| dataset | noise | loss | seeds | best test % | at epoch | last test % | drop | memorised % |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['dataset']} | {column_label(r['noise_kind'], r['noise_rate'])} | {method_label(r['method'])} "
                     f"| {r['n']} | {r['peak']:.2f} | {r['peak_epoch']:.0f} | {r['last']:.2f} | {r['drop']:.2f} "
                     f"| {r['memorised']:.1f} |")
    return "\n".join(lines) + "\n"
