"""Plots of one run: learning curves, memorisation, test confusion matrix, noise transition matrix.

Every run draws them, so they are kept cheap: detached figures (no pyplot), a fixed layout instead
of the layout solver, and a modest size and resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..keys import M
from .figure import new_figure, save_figure

#: One colour per data split, the same in every panel.
COLOURS = {"train": "tab:blue", "train_clean": "tab:cyan", "val": "tab:orange", "test": "tab:green"}
ACCURACY_LINES = ((M.TRAIN_ACC_NOISY, "train, against its noisy labels", COLOURS["train"]),
                  (M.TRAIN_ACC_CLEAN, "train, against the true labels", COLOURS["train_clean"]),
                  (M.VAL_ACC, "validation (its labels)", COLOURS["val"]),
                  (M.TEST_ACC, "test (clean labels)", COLOURS["test"]))
#: The run's own loss (NCE+RCE with beta=100 is ~100x cross-entropy) gets its own panel; the held-out losses
#: are cross-entropy, comparable across runs, on another.
TRAIN_LOSS_LINES = ((M.TRAIN_LOSS, "train (the run's loss)", COLOURS["train"]),)
HELD_OUT_LOSS_LINES = ((M.VAL_LOSS, "validation", COLOURS["val"]),
                       (M.TEST_LOSS, "test", COLOURS["test"]))
MEMORISATION_LINES = ((M.TRAIN_MEMORISED, "predicts its wrong label", "tab:red"),
                      (M.TRAIN_CORRECTED, "predicts its true label", "tab:green"))
#: (title, y label, lines, x100) of each panel, left to right.
PANELS = (("accuracy", "accuracy (%)", ACCURACY_LINES, True),
          ("training loss", "the run's loss", TRAIN_LOSS_LINES, False),
          ("held-out loss", "cross-entropy", HELD_OUT_LOSS_LINES, False),
          ("memorisation of flipped labels", "% of flipped samples", MEMORISATION_LINES, True))


def plot_curves(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Accuracy (train noisy/clean, val, test), the run's loss, the held-out cross-entropy and the
    memorisation of flipped labels per epoch: a panel and a y axis each, legends under the panels."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, axes = new_figure((15, 4.2), 1, len(PANELS), layout=None)
    fig.subplots_adjust(left=0.045, right=0.985, bottom=0.26, top=0.84 if title else 0.9, wspace=0.28)
    for ax, (name, ylabel, lines, percent) in zip(axes, PANELS):
        for key, label, colour in lines:
            if key in history[0]:
                ax.plot(epochs, [(100 if percent else 1) * row[key] for row in history], label=label, color=colour)
        ax.set(xlabel="epoch", ylabel=ylabel, title=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_lines():  # under the panel, never over its curves
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)[0]


def plot_matrix(matrix: np.ndarray, path: Path, title: str, xlabel: str, ylabel: str, fmt: str = ".2f") -> Path:
    """A heat-map of a K x K matrix, annotated when small enough to read."""
    k = matrix.shape[0]
    side = min(3.5 + 0.4 * k, 12)
    fig, ax = new_figure((side + 0.8, side), layout=None)
    fig.subplots_adjust(left=0.1, right=0.9, bottom=0.1, top=0.92)
    image = ax.imshow(matrix, cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= 20:
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
    if k <= 12:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] < matrix.max() / 2 else "black")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return save_figure(fig, path)[0]
