"""Plots of one run: learning curves, memorisation, test confusion matrix, noise transition matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: One colour per data split, the same in every panel.
COLOURS = {"train": "tab:blue", "train_clean": "tab:cyan", "val": "tab:orange", "test": "tab:green"}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_curves(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Accuracy (train noisy/clean, val, test), loss, and the memorisation of flipped labels per epoch."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for key, label, colour in (("train/acc_noisy", "train, against its noisy labels", COLOURS["train"]),
                               ("train/acc_clean", "train, against the true labels", COLOURS["train_clean"]),
                               ("val/acc", "validation (its labels)", COLOURS["val"]),
                               ("test/acc", "test (clean labels)", COLOURS["test"])):
        if key in history[0]:
            axes[0].plot(epochs, [100 * row[key] for row in history], label=label, color=colour)
    axes[0].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for key, label, colour in (("train/loss", "train (the run's loss)", COLOURS["train"]),
                               ("val/loss", "validation (cross-entropy)", COLOURS["val"]),
                               ("test/loss", "test (cross-entropy)", COLOURS["test"])):
        if key in history[0]:
            axes[1].plot(epochs, [row[key] for row in history], label=label, color=colour)
    axes[1].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[2].plot(epochs, [100 * row["train/memorised"] for row in history], label="predicts its wrong label")
    axes[2].plot(epochs, [100 * row["train/corrected"] for row in history], label="predicts its true label")
    axes[2].set(xlabel="epoch", ylabel="% of flipped samples", title="memorisation of flipped labels")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_matrix(matrix: np.ndarray, path: Path, title: str, xlabel: str, ylabel: str, fmt: str = ".2f") -> Path:
    """A heat-map of a K x K matrix, annotated when small enough to read."""
    k = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(min(4 + 0.45 * k, 14), min(3.5 + 0.45 * k, 13)))
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
    return _save(fig, path)
