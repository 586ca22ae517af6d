"""Figures of an experiment, as PNG and PDF: accuracy and memorisation per epoch (mean with a band
over seeds), accuracy against noise rate beside the paper, and the alpha x beta heat-map of a study.

Every figure is a detached ``matplotlib.figure.Figure`` made and saved through ``aplab.plotting.figure``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..keys import M, T
from ..plotting.figure import new_figure, plot_grid_heatmap, save_figure
from ..plotting.palette import style
from ..status import RunStatus
from ..tracking import RunRecord
from .render import column_label, method_label
from .tables import KIND_ORDER

Histories = dict[str, dict[str, list[tuple[int, float]]]]
#: The two loss parameters of a study's grid: rows (active term) and columns (passive term).
GRID_PARAMS = ("loss.alpha", "loss.beta")
AXIS_LABELS = ("α (active)", "β (passive)")
MAX_GRID = 12  # more distinct values than this on an axis (a TPE study): a scatter instead of a grid


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def _formats(stem: Path) -> list[Path]:
    """Every report figure is written as PNG (to look at) and PDF (for a paper)."""
    return [stem.with_suffix(".png"), stem.with_suffix(".pdf")]


#: Markers on a curve: about this many per line, each line's shifted so coinciding curves show both.
MARKS_PER_LINE = 8
BAND_LABEL = "shaded: ±1 sample std over seeds"


def _marks(epochs: int, position: int) -> tuple[int, int]:
    """``markevery`` of the ``position``-th line: a marker every few epochs, offset per line."""
    every = max(1, epochs // MARKS_PER_LINE)
    return (position * max(1, every // 4)) % every, every


def _legend_below(fig, handles: list, labels: list[str], columns: int = 1) -> None:
    """One legend for the whole figure, under its panels (the same losses in each): never over a curve;
    two entries per panel column in a row, so it is never wider than the figure."""
    fig.legend(handles, labels, loc="outside lower center", ncol=max(1, min(len(labels), 2 * columns)), fontsize=8,
               frameon=False)


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
    from matplotlib.ticker import MaxNLocator

    from matplotlib.patches import Patch

    paths: list[Path] = []
    methods = list(dict.fromkeys(frame["method"]))
    for dataset, block in frame.groupby("dataset", sort=False):
        panels = [p for p in _panels(block) if not (skip_clean and p[0] == "clean")]
        if not panels:
            continue
        cols = min(len(panels), 3)
        rows = math.ceil(len(panels) / cols)
        fig, axes = new_figure((5 * cols, 3.8 * rows + 0.8), rows, cols, squeeze=False)
        legend: dict[str, object] = {}
        for ax, (kind, rate) in zip(axes.flat, panels):
            here = block[(block["noise_kind"] == kind) & (block["noise_rate"] == rate)]
            for method, runs in here.groupby("method", sort=False):
                series = [histories[r][key] for r in runs["run_id"] if histories.get(r, {}).get(key)]
                if not series:
                    continue
                epochs, mean, std = mean_band(series)
                look = style(method)
                (line,) = ax.plot(epochs, 100 * mean, **look.line(), markersize=4,
                                  markevery=_marks(len(epochs), methods.index(method)))
                ax.fill_between(epochs, 100 * (mean - std), 100 * (mean + std), color=look.colour, alpha=0.15,
                                linewidth=0)
                legend.setdefault(f"{method_label(method)} (n={len(series)})", line)
            ax.set(title=f"{dataset}, {column_label(kind, rate)}", xlabel="epoch", ylabel=ylabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        band = Patch(facecolor="grey", alpha=0.3, label=BAND_LABEL)
        _legend_below(fig, [*legend.values(), band], [*legend, BAND_LABEL], cols)
        paths += save_figure(fig, _formats(out / f"{name}_{_slug(dataset)}"))
    return paths


def accuracy_vs_noise(summary: pd.DataFrame, out: Path, ylabel: str) -> list[Path]:
    """Per dataset and noise kind with at least two rates: our mean ± std against the rate (the clean
    column is rate 0), the paper's numbers as dashed open markers in the same colour."""
    paths: list[Path] = []
    for dataset, block in summary.groupby("dataset", sort=False):
        clean = block[block["noise_kind"] == "clean"]
        for kind in [k for k in dict.fromkeys(block["noise_kind"]) if k != "clean"]:
            here = pd.concat([clean, block[block["noise_kind"] == kind]])
            if here["noise_rate"].nunique() < 2:
                continue
            fig, ax = new_figure((6.5, 5.3))
            handles, labels = [], []
            for method, rows in here.groupby("method", sort=False):
                rows = rows.sort_values("noise_rate")
                look = style(method)
                drawn = ax.errorbar(rows["noise_rate"], rows["mean"], yerr=rows["std"].fillna(0), capsize=3,
                                    **look.line())
                handles.append(drawn)
                labels.append(method_label(method))
                paper = rows.dropna(subset=["paper_mean"])
                if not paper.empty:
                    ax.plot(paper["noise_rate"], paper["paper_mean"], linestyle="none", marker=look.marker,
                            fillstyle="none", color=look.colour, alpha=0.7, markersize=8)
            note = " (open markers: the paper)" if here["paper_mean"].notna().any() else ""
            ax.set(title=f"{dataset}, {kind} noise{note}", xlabel="noise rate η", ylabel=f"{ylabel} (±1 std)")
            ax.grid(alpha=0.3)
            _legend_below(fig, handles, labels)
            paths += save_figure(fig, _formats(out / f"accuracy_vs_noise_{_slug(dataset)}_{_slug(kind)}"))
    return paths


def study_grids(records: Sequence[RunRecord], metric: str = M.VAL_ACC) -> dict[str, pd.DataFrame]:
    """``{parent run id: grid}`` for every study parent whose finished children carry params loss.alpha
    and loss.beta and the metric; grid rows are alpha, columns beta, cells the mean metric (as logged, 0..1)."""
    found: dict[str, list[dict[str, float]]] = {}
    for record in records:
        parent = record.tags.get(T.PARENT_RUN_ID)
        if not parent or record.status != RunStatus.FINISHED or metric not in record.metrics:
            continue
        try:
            alpha, beta = (float(record.params[p]) for p in GRID_PARAMS)
        except (KeyError, TypeError, ValueError):
            continue
        found.setdefault(parent, []).append({"alpha": alpha, "beta": beta, "value": record.metrics[metric]})
    return {parent: pd.DataFrame(rows).pivot_table(index="alpha", columns="beta", values="value", aggfunc="mean")
            for parent, rows in found.items()}


def heatmap(grid: pd.DataFrame, out: Path, title: str, metric: str = M.VAL_ACC) -> list[Path]:
    """The alpha x beta grid as the annotated heat-map studies draw (``plotting.plot_grid_heatmap``), or a
    log-log scatter coloured by the metric when the trials do not form a small grid (a TPE study)."""
    if len(grid.index) > MAX_GRID or len(grid.columns) > MAX_GRID:
        return _scatter(grid, out, title, metric)
    cells = {(a, b): float(v) for (a, b), v in grid.stack().items()}
    paths = _formats(out)
    plot_grid_heatmap(cells, list(grid.index), list(grid.columns), AXIS_LABELS[0], AXIS_LABELS[1], paths, title,
                      value_label=f"{metric} (%)")
    return paths


def _scatter(grid: pd.DataFrame, out: Path, title: str, metric: str) -> list[Path]:
    points = grid.stack().reset_index(name="value")
    fig, ax = new_figure((6.5, 5))
    image = ax.scatter(points["beta"], points["alpha"], c=100 * points["value"], cmap="viridis", s=40)
    best = points.loc[points["value"].idxmax()]
    ax.scatter([best["beta"]], [best["alpha"]], s=160, facecolors="none", edgecolors="red", linewidths=2)
    fig.colorbar(image, ax=ax, label=f"{metric} (%)")
    ax.set(xscale="log", yscale="log", xlabel=AXIS_LABELS[1], ylabel=AXIS_LABELS[0], title=title)
    return save_figure(fig, _formats(out))
