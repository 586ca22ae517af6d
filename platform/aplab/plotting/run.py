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
LOSS_LINES = ((M.TRAIN_LOSS, "train (the run's loss)", COLOURS["train"]),
              (M.VAL_LOSS, "validation (cross-entropy)", COLOURS["val"]),
              (M.TEST_LOSS, "test (cross-entropy)", COLOURS["test"]))


def plot_curves(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Accuracy (train noisy/clean, val, test), loss, and the memorisation of flipped labels per epoch."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, axes = new_figure((12, 3.6), 1, 3, layout=None)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.83 if title else 0.9, wspace=0.25)
    for key, label, colour in ACCURACY_LINES:
        if key in history[0]:
            axes[0].plot(epochs, [100 * row[key] for row in history], label=label, color=colour)
    axes[0].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for key, label, colour in LOSS_LINES:
        if key in history[0]:
            axes[1].plot(epochs, [row[key] for row in history], label=label, color=colour)
    axes[1].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[2].plot(epochs, [100 * row[M.TRAIN_MEMORISED] for row in history], label="predicts its wrong label")
    axes[2].plot(epochs, [100 * row[M.TRAIN_CORRECTED] for row in history], label="predicts its true label")
    axes[2].set(xlabel="epoch", ylabel="% of flipped samples", title="memorisation of flipped labels")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
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
