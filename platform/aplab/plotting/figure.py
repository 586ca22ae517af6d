"""The figure helpers every plot goes through: figures built with ``matplotlib.figure.Figure``, so
that drawing one never touches pyplot's global state or a notebook's backend; one function that
saves a figure; and the one annotated heat-map of a two-parameter grid (a study's alpha x beta in
``aplab study`` and in ``aplab report``).

matplotlib is imported by the functions that draw, never at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Resolution of saved raster figures: sharp on a high-density screen and in a slide (PDFs are vector).
DPI = 150


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, layout: str | None = "constrained",
               squeeze: bool = True) -> tuple[Any, Any]:
    """A detached figure and its axes (no pyplot, no backend switch).

    ``layout=None`` skips the automatic layout (the figure's margins are then the caller's): per-run
    plots do so because the layout solver costs more than drawing a small figure.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes


def save_figure(fig: Any, paths: Path | Sequence[Path], dpi: int = DPI) -> list[Path]:
    """Write ``fig`` to each path (its suffix picks the format: .png, .pdf, ...) and return the paths."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return paths


def grid_matrix(cells: dict[tuple[object, object], float | None], rows: Sequence[object],
                cols: Sequence[object]) -> np.ndarray:
    """``cells[(row value, col value)]`` as a rows x cols array; missing or None cells are NaN."""
    matrix = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            value = cells.get((r, c))
            if value is not None:
                matrix[i, j] = value
    return matrix


def _tick(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot_grid_heatmap(cells: dict[tuple[object, object], float | None], rows: Sequence[object],
                      cols: Sequence[object], row_name: str, col_name: str, path: Path | Sequence[Path], title: str,
                      notes: dict[tuple[object, object], str] | None = None,
                      value_label: str = "validation accuracy (%)") -> Path:
    """Heat-map of accuracies (0..1, shown in %) with each cell written in and the best cell boxed in
    red; ``notes`` labels empty cells (pruned, failed, ...). Saved to every path; returns the first."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    matrix = 100 * grid_matrix(cells, rows, cols)
    fig, ax = new_figure((1.3 * len(cols) + 2.5, 1.0 * len(rows) + 1.8))
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")
    finite = matrix[np.isfinite(matrix)]
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, aspect="auto",
                      vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 100)
    fig.colorbar(image, ax=ax, label=value_label)
    middle = (finite.min() + finite.max()) / 2 if finite.size else 50
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            value = matrix[i, j]
            text = f"{value:.1f}" if np.isfinite(value) else (notes or {}).get((r, c), "")
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if np.isfinite(value) and value < middle else "black")
    if finite.size:
        i, j = np.unravel_index(np.nanargmax(matrix), matrix.shape)
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(cols)), [_tick(c) for c in cols])
    ax.set_yticks(range(len(rows)), [_tick(r) for r in rows])
    ax.set(xlabel=col_name, ylabel=row_name, title=title)
    return save_figure(fig, path)[0]
