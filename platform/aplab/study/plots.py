"""The study's figure: validation accuracy over a 2-parameter grid (the paper's Figure 5 for alpha x beta)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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


def plot_grid_heatmap(cells: dict[tuple[object, object], float | None], rows: Sequence[object],
                      cols: Sequence[object], row_name: str, col_name: str, path: Path, title: str,
                      notes: dict[tuple[object, object], str] | None = None) -> Path:
    """Heat-map of accuracies (0..1, shown in %) with each cell written in; ``notes`` labels empty cells."""
    matrix = 100 * grid_matrix(cells, rows, cols)
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.5, 1.0 * len(rows) + 1.8))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    finite = matrix[np.isfinite(matrix)]
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, aspect="auto",
                      vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 100)
    fig.colorbar(image, ax=ax, label="validation accuracy (%)")
    middle = (finite.min() + finite.max()) / 2 if finite.size else 50
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            value = matrix[i, j]
            text = f"{value:.1f}" if np.isfinite(value) else (notes or {}).get((r, c), "")
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if np.isfinite(value) and value < middle else "black")
    ax.set_xticks(range(len(cols)), [f"{c:g}" if isinstance(c, float) else str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [f"{r:g}" if isinstance(r, float) else str(r) for r in rows])
    ax.set(xlabel=col_name, ylabel=row_name, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["grid_matrix", "plot_grid_heatmap"]
