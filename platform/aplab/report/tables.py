"""Tables from the tracking store: one row per run, then mean ± sample std over seeds beside the paper.

Only finished training runs count (a run tagged with dataset, loss, noise and seed); study trials
(child runs) and report runs are left out. Rows are losses, columns noise rates, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from ..config import field_names
from ..keys import AXIS_FIELDS, REQUIRED_RUN_TAGS, M, T, affects_results
from ..registry import Registry
from ..status import RunStatus
from ..tracking import RunRecord, Tracker
from .paper import PAPER_ROW_ORDER, lookup, noise_key


@dataclass(frozen=True)
class Metric:
    """A table's value: the run metric it reads and how a caption names it."""

    key: str
    title: str
    short: str
    fallback: str | None = None  # read this metric's last value when ``key`` is missing


METRICS: Registry[Metric] = Registry("--metric")
METRICS.register("last", Metric(M.TEST_ACC_LAST, "test accuracy (%) at the last epoch (the paper's protocol)",
                                "last-epoch test accuracy (%)", M.TEST_ACC))
METRICS.register("best", Metric(M.TEST_ACC_BEST, "best test accuracy (%) over epochs (the protocol of many later papers)",
                                "best-epoch test accuracy (%)"))
METRICS.register("best_val", Metric(M.TEST_ACC_BEST_VAL, "test accuracy (%) at the epoch of best validation accuracy",
                                    "test accuracy (%) at best validation"))

KIND_ORDER = ("clean", "symmetric", "asymmetric")
GROUP = ["dataset", "noise_kind", "noise_rate", "method"]


def is_table_run(record: RunRecord) -> bool:
    """A finished training run (not a study trial, not a report)."""
    tags = record.tags
    return (record.status == RunStatus.FINISHED and all(k in tags for k in REQUIRED_RUN_TAGS)
            and tags.get(T.REPORT) != "1" and T.PARENT_RUN_ID not in tags)


def _variant(params: dict[str, str], fields: set[str]) -> dict[str, str]:
    """The config fields among a run's params that change results and are not table axes: what tells
    two runs of one loss apart (facts logged beside the config, like the realised noise rate, are not)."""
    return {k: v for k, v in params.items() if k in fields and affects_results(k) and k not in AXIS_FIELDS}


def _labels(frame: pd.DataFrame) -> list[str]:
    """Row label of each run: its loss, plus the fields that differ between runs of that loss on that dataset."""
    labels = list(frame["loss"])
    for _, group in frame.groupby(["dataset", "loss"], sort=False):
        variants = list(group["variant"])
        keys = sorted({k for v in variants for k in v})
        differing = [k for k in keys if len({v.get(k) for v in variants}) > 1]
        if not differing:
            continue
        for position, variant in zip(group.index, variants):
            parts = [f"{k.removeprefix('loss.')}={variant.get(k, '-')}" for k in differing]
            labels[frame.index.get_loc(position)] = f"{frame.at[position, 'loss']} ({', '.join(parts)})"
    return labels


def runs_frame(records: Iterable[RunRecord], hashes: set[str] | None = None) -> pd.DataFrame:
    """One row per finished training run (optionally only those whose config hash is in ``hashes``)."""
    rows = []
    fields = set(field_names())
    for record in records:
        if not is_table_run(record) or (hashes is not None and record.tags.get(T.CONFIG_HASH) not in hashes):
            continue
        tags, metrics = record.tags, record.metrics
        kind, rate = noise_key(tags[T.NOISE])
        row = {"run_id": record.run_id, "config_hash": tags.get(T.CONFIG_HASH, ""), "dataset": tags[T.DATASET],
               "noise": tags[T.NOISE], "noise_kind": kind, "noise_rate": rate, "loss": tags[T.LOSS],
               "seed": int(tags[T.SEED]), "variant": _variant(record.params, fields)}
        for name, metric in METRICS.items():
            value = metrics.get(metric.key, metrics.get(metric.fallback) if metric.fallback else None)
            row[name] = float(value) if value is not None else math.nan
        rows.append(row)
    columns = ["run_id", "config_hash", "dataset", "noise", "noise_kind", "noise_rate", "loss", "seed", "variant",
               *METRICS.names(), "method"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    frame["method"] = _labels(frame)
    return frame[columns]


def _sort_keys(frame: pd.DataFrame, order: Sequence[str] | None) -> pd.DataFrame:
    loss_order = list(order or []) + [loss for loss in PAPER_ROW_ORDER if loss not in (order or [])]
    datasets = list(dict.fromkeys(frame["dataset"]))
    kinds = list(KIND_ORDER) + sorted(k for k in set(frame["noise_kind"]) if k not in KIND_ORDER)
    return frame.assign(
        _d=frame["dataset"].map(datasets.index), _k=frame["noise_kind"].map(kinds.index),
        _l=frame["loss"].map(lambda name: loss_order.index(name) if name in loss_order else len(loss_order)))


def sort_runs(frame: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Runs in table order: dataset, loss (``order``, then the paper's), noise column, seed."""
    if frame.empty:
        return frame
    keyed = _sort_keys(frame, order).sort_values(["_d", "_l", "method", "_k", "noise_rate", "seed"], kind="stable")
    return keyed.drop(columns=["_d", "_k", "_l"]).reset_index(drop=True)


def summarise(frame: pd.DataFrame, metric: str = "last", prefer_table: str | None = None,
              order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and sample std (ddof=1) over seeds per (dataset, noise, method), in %, beside the paper.

    Columns: dataset, noise_kind, noise_rate, method, loss, n, seeds, mean, std, paper_table,
    paper_mean, paper_std, diff (ours - paper, in points) and rank (1 = best in its column).
    A seed with several runs counts once (the first).
    """
    METRICS.get(metric, "--metric")
    data = frame.dropna(subset=[metric])
    data = data[~data.duplicated(GROUP + ["seed"])]
    rows = []
    for (dataset, kind, rate, method), group in data.groupby(GROUP, sort=False, dropna=False):
        values = 100.0 * group[metric].astype(float)
        loss = str(group["loss"].iloc[0])
        paper = lookup(dataset, kind, rate, loss, prefer_table)
        mean = float(values.mean())
        rows.append({
            "dataset": dataset, "noise_kind": kind, "noise_rate": rate, "method": method, "loss": loss,
            "n": len(values), "seeds": " ".join(str(s) for s in sorted(group["seed"])), "mean": mean,
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            "paper_table": paper.table if paper else None, "paper_mean": paper.mean if paper else math.nan,
            "paper_std": paper.std if paper and paper.std is not None else math.nan,
            "diff": mean - paper.mean if paper else math.nan})
    summary = pd.DataFrame(rows, columns=["dataset", "noise_kind", "noise_rate", "method", "loss", "n", "seeds",
                                          "mean", "std", "paper_table", "paper_mean", "paper_std", "diff"])
    if summary.empty:
        return summary.assign(rank=pd.Series(dtype=int))
    summary["rank"] = summary.groupby(["dataset", "noise_kind", "noise_rate"])["mean"].rank(
        ascending=False, method="min").astype(int)
    keyed = _sort_keys(summary, order)
    keyed = keyed.sort_values(["_d", "_l", "method", "_k", "noise_rate"], kind="stable")
    return keyed.drop(columns=["_d", "_k", "_l"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- rendering


def column_label(kind: str, rate: float) -> str:
    """The paper's column names: clean, sym. 0.4, asym. 0.2."""
    if kind == "clean":
        return "clean"
    short = {"symmetric": "sym.", "asymmetric": "asym."}.get(kind, kind)
    return f"{short} {rate:g}"


def method_label(method: str) -> str:
    """CE, NCE+RCE, ... as the paper writes them (a variant suffix stays as it is)."""
    name, sep, rest = method.partition(" ")
    return name.upper() + sep + rest


@dataclass(frozen=True)
class Markup:
    """How one output format writes emphasis, ± and its table frame."""

    bold: str
    underline: str
    pm: str
    minus: str
    note: str
    escape: tuple[tuple[str, str], ...] = ()

    def text(self, value: str) -> str:
        for old, new in self.escape:
            value = value.replace(old, new)
        return value


MARKDOWN = Markup(bold="**{}**", underline="<u>{}</u>", pm=" ± ", minus="-", note=" ({})")
LATEX = Markup(bold=r"\textbf{{{}}}", underline=r"\underline{{{}}}", pm=r" $\pm$ ", minus="$-$",
               note=r" {{\scriptsize ({})}}", escape=(("_", r"\_"), ("%", r"\%"), ("&", r"\&")))


def cell_text(row: pd.Series, markup: Markup) -> str:
    """``mean ± std`` (emphasised when first or second in its column), then (paper mean, difference)."""
    value = f"{row['mean']:.2f}" + (f"{markup.pm}{row['std']:.2f}" if not math.isnan(row["std"]) else "")
    if row["rank"] == 1:
        value = markup.bold.format(value)
    elif row["rank"] == 2:
        value = markup.underline.format(value)
    if not math.isnan(row["paper_mean"]):
        diff = f"{row['diff']:+.2f}".replace("-", markup.minus)
        value += markup.note.format(f"{row['paper_mean']:.2f}, {diff}")
    return value


def _grid(summary: pd.DataFrame, markup: Markup) -> tuple[list[str], list[list[str]]]:
    """Header and body rows of the wide table: dataset, loss, then one column per noise setting."""
    columns = list(dict.fromkeys(zip(summary["noise_kind"], summary["noise_rate"])))
    kinds = list(KIND_ORDER) + sorted({k for k, _ in columns if k not in KIND_ORDER})
    columns.sort(key=lambda c: (kinds.index(c[0]), c[1]))
    header = ["dataset", "loss"] + [column_label(k, r) for k, r in columns]
    body = []
    for (dataset, method), group in summary.groupby(["dataset", "method"], sort=False):
        cells = {(r["noise_kind"], r["noise_rate"]): cell_text(r, markup) for _, r in group.iterrows()}
        body.append([markup.text(dataset), markup.text(method_label(method))] + [cells.get(c, "") for c in columns])
    return header, body


def caption(metric: str, summary: pd.DataFrame) -> str:
    seeds = sorted(set(summary["n"])) if not summary.empty else []
    n = "/".join(str(s) for s in seeds)
    title = METRICS.get(metric).title
    return (f"{title[0].upper()}{title[1:]}: mean ± sample std over {n} seed(s); in brackets the paper's mean and "
            "our difference (points); best in each column bold, second underlined.")


def to_markdown(summary: pd.DataFrame, metric: str = "last") -> str:
    """The wide table in Markdown (bold best, underlined second), with a caption line."""
    header, body = _grid(summary, MARKDOWN)
    lines = [f"_{caption(metric, summary)}_", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    previous = None
    for row in body:
        shown = [row[0] if row[0] != previous else ""] + row[1:]
        previous = row[0]
        lines.append("| " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def to_latex(summary: pd.DataFrame, metric: str = "last") -> str:
    """The wide table as a LaTeX ``table`` with booktabs rules (needs ``\\usepackage{booktabs}``)."""
    header, body = _grid(summary, LATEX)
    lines = [r"\begin{table}[t]", r"\centering", r"\caption{" + LATEX.text(caption(metric, summary)).replace(
             "±", r"$\pm$") + "}", r"\resizebox{\linewidth}{!}{%", r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}",
             r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    previous = None
    for row in body:
        if previous is not None and row[0] != previous:
            lines.append(r"\midrule")
        lines.append(" & ".join([row[0] if row[0] != previous else ""] + row[1:]) + r" \\")
        previous = row[0]
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_plain(summary: pd.DataFrame) -> str:
    """The wide table for a terminal (no markup; * marks the best of a column)."""
    plain = Markup(bold="{}*", underline="{}", pm=" ± ", minus="-", note=" ({})")
    header, body = _grid(summary, plain)
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *body]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- training dynamics


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
    keyed = _sort_keys(means, order).sort_values(["_d", "_k", "noise_rate", "_l", "method"], kind="stable")
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
