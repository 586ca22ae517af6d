"""Figures of an experiment, as PNG and PDF: accuracy and memorisation per epoch (mean with a band
over seeds), accuracy against noise rate beside the paper, and the alpha x beta heat-map of a study.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from ..tracking import RunRecord  # noqa: E402
from .tables import KIND_ORDER, column_label, method_label  # noqa: E402

Histories = dict[str, dict[str, list[tuple[int, float]]]]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def save(fig, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf and close the figure."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=130)
    plt.close(fig)
    return paths


def _colours(methods: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def mean_band(series: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs common to all seeds, and the mean and sample std (0 for one seed) over seeds at each."""
    common = sorted(set.intersection(*(set(step for step, _ in s) for s in series)))
    values = np.array([[dict(s)[step] for step in common] for s in series], dtype=float)
    std = values.std(axis=0, ddof=1) if len(series) > 1 else np.zeros(len(common))
    return np.array(common), values.mean(axis=0), std


def _panels(frame: pd.DataFrame) -> list[tuple[str, float]]:
    kinds = list(KIND_ORDER) + sorted(k for k in set(frame["noise_kind"]) if k not in KIND_ORDER)
    return sorted(set(zip(frame["noise_kind"], frame["noise_rate"])), key=lambda c: (kinds.index(c[0]), c[1]))


def curves(frame: pd.DataFrame, histories: Histories, key: str, ylabel: str, out: Path, name: str,
           skip_clean: bool = False) -> list[Path]:
    """One figure per dataset, a panel per noise setting, a line per loss: ``key`` (x100) against epoch,
    mean over seeds with a ±1 std band."""
    paths: list[Path] = []
    methods = list(dict.fromkeys(frame["method"]))
    colours = _colours(methods)
    for dataset, block in frame.groupby("dataset", sort=False):
        panels = [p for p in _panels(block) if not (skip_clean and p[0] == "clean")]
        if not panels:
            continue
        cols = min(len(panels), 3)
        rows = math.ceil(len(panels) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
        for ax, (kind, rate) in zip(axes.flat, panels):
            here = block[(block["noise_kind"] == kind) & (block["noise_rate"] == rate)]
            for method, runs in here.groupby("method", sort=False):
                series = [histories[r][key] for r in runs["run_id"] if histories.get(r, {}).get(key)]
                if not series:
                    continue
                epochs, mean, std = mean_band(series)
                ax.plot(epochs, 100 * mean, color=colours[method], label=f"{method_label(method)} (n={len(series)})")
                ax.fill_between(epochs, 100 * (mean - std), 100 * (mean + std), color=colours[method], alpha=0.2,
                                linewidth=0)
            ax.set(title=f"{dataset}, {column_label(kind, rate)}", xlabel="epoch", ylabel=ylabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        paths += save(fig, out / f"{name}_{_slug(dataset)}")
    return paths


def accuracy_vs_noise(summary: pd.DataFrame, out: Path, ylabel: str) -> list[Path]:
    """Per dataset and noise kind with at least two rates: our mean ± std against the rate (the clean
    column is rate 0), the paper's numbers as dashed open markers in the same colour."""
    paths: list[Path] = []
    colours = _colours(list(dict.fromkeys(summary["method"])))
    for dataset, block in summary.groupby("dataset", sort=False):
        clean = block[block["noise_kind"] == "clean"]
        for kind in [k for k in dict.fromkeys(block["noise_kind"]) if k != "clean"]:
            here = pd.concat([clean, block[block["noise_kind"] == kind]])
            if here["noise_rate"].nunique() < 2:
                continue
            fig, ax = plt.subplots(figsize=(6.5, 4.5))
            for method, rows in here.groupby("method", sort=False):
                rows = rows.sort_values("noise_rate")
                ax.errorbar(rows["noise_rate"], rows["mean"], yerr=rows["std"].fillna(0), marker="o", capsize=3,
                            color=colours[method], label=method_label(method))
                paper = rows.dropna(subset=["paper_mean"])
                if not paper.empty:
                    ax.plot(paper["noise_rate"], paper["paper_mean"], linestyle="--", marker="o", fillstyle="none",
                            color=colours[method], alpha=0.7)
            note = " (dashed, open: the paper)" if here["paper_mean"].notna().any() else ""
            ax.set(title=f"{dataset}, {kind} noise{note}", xlabel="noise rate η", ylabel=ylabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            paths += save(fig, out / f"accuracy_vs_noise_{_slug(dataset)}_{_slug(kind)}")
    return paths


def study_grids(records: Sequence[RunRecord], metric: str = "val/acc") -> dict[str, pd.DataFrame]:
    """``{parent run id: grid}`` for every study parent whose finished children carry params loss.alpha
    and loss.beta and the metric; grid rows are alpha, columns beta, cells the mean metric (x100)."""
    found: dict[str, list[dict[str, float]]] = {}
    for record in records:
        parent = record.tags.get("mlflow.parentRunId")
        if not parent or record.status != "FINISHED" or metric not in record.metrics:
            continue
        try:
            alpha, beta = float(record.params["loss.alpha"]), float(record.params["loss.beta"])
        except (KeyError, TypeError, ValueError):
            continue
        found.setdefault(parent, []).append({"alpha": alpha, "beta": beta, "value": 100 * record.metrics[metric]})
    return {parent: pd.DataFrame(rows).pivot_table(index="alpha", columns="beta", values="value", aggfunc="mean")
            for parent, rows in found.items()}


MAX_GRID = 12  # more distinct values than this on an axis (a TPE study): a scatter instead of a grid


def heatmap(grid: pd.DataFrame, out: Path, title: str, metric: str = "val/acc") -> list[Path]:
    """The alpha x beta grid as an annotated heat-map with the best cell boxed (a log-log scatter
    coloured by the metric when the trials do not form a small grid)."""
    if len(grid.index) > MAX_GRID or len(grid.columns) > MAX_GRID:
        return _scatter(grid, out, title, metric)
    values = grid.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 * len(grid.columns) + 2.5, 1.0 * len(grid.index) + 1.8))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", origin="lower", aspect="auto")
    fig.colorbar(image, ax=ax, label=f"{metric} (%)")
    ax.set_xticks(range(len(grid.columns)), [f"{b:g}" for b in grid.columns])
    ax.set_yticks(range(len(grid.index)), [f"{a:g}" for a in grid.index])
    finite = values[np.isfinite(values)]
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=8,
                        color="black" if values[i, j] > (finite.min() + finite.max()) / 2 else "white")
    if finite.size:
        i, j = np.unravel_index(np.nanargmax(values), values.shape)
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set(xlabel="β (passive)", ylabel="α (active)", title=title)
    return save(fig, out)


def _scatter(grid: pd.DataFrame, out: Path, title: str, metric: str) -> list[Path]:
    points = grid.stack().reset_index(name="value")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    image = ax.scatter(points["beta"], points["alpha"], c=points["value"], cmap="viridis", s=40)
    best = points.loc[points["value"].idxmax()]
    ax.scatter([best["beta"]], [best["alpha"]], s=160, facecolors="none", edgecolors="red", linewidths=2)
    fig.colorbar(image, ax=ax, label=f"{metric} (%)")
    ax.set(xscale="log", yscale="log", xlabel="β (passive)", ylabel="α (active)", title=title)
    return save(fig, out)
