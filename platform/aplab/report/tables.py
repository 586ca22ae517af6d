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
from ..tracking import RunRecord
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


def sort_keys(frame: pd.DataFrame, order: Sequence[str] | None) -> pd.DataFrame:
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
    keyed = sort_keys(frame, order).sort_values(["_d", "_l", "method", "_k", "noise_rate", "seed"], kind="stable")
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
    keyed = sort_keys(summary, order)
    keyed = keyed.sort_values(["_d", "_l", "method", "_k", "noise_rate"], kind="stable")
    return keyed.drop(columns=["_d", "_k", "_l"]).reset_index(drop=True)
