"""digits: scikit-learn's bundled 8x8 digits (no files, no network; ``data_dir`` is ignored), and its preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...config.presets import DatasetPreset
from .base import Dataset, ImageTensors, register_dataset

DIGITS_CACHE = "digits.npz"
DIGITS_SHAPE = (1797, 8, 8)

PRESET = DatasetPreset(
    model="cnn4", epochs=60, lr=0.05, weight_decay=1e-4, augment="none", batch_size=64,
    apl=(1.0, 1.0), sce=(0.01, 1.0), ngce_q=0.1)


@register_dataset("digits", preset=PRESET)
def load_digits(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images), with a fixed stratified 80/20 split (seed 0)."""
    from ..split import stratified_split

    raw_images, target = digits_arrays()
    # Pixel values are integers 0..16; rescale to 0..255 and round to the nearest integer.
    images = np.rint(raw_images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, 0.2, seed=0)
    train_images = images[train_idx] / 255.0
    return Dataset(
        name="digits",
        num_classes=10,
        train=ImageTensors(torch.from_numpy(np.ascontiguousarray(images[train_idx])), labels[train_idx]),
        test=ImageTensors(torch.from_numpy(np.ascontiguousarray(images[test_idx])), labels[test_idx]),
        mean=(float(train_images.mean()),),
        std=(float(train_images.std()),),
        channels=1,
        image_size=8,
        class_names=tuple(str(c) for c in range(10)),
    )


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (images 0..16, targets), kept parsed in aplab's cache folder: importing
    ``sklearn.datasets`` costs about a second per process, a tenth of a small run's set-up."""
    from ...cache import cache_dir
    from ...atomic import atomic_write_bytes

    path = cache_dir() / DIGITS_CACHE
    try:
        with np.load(path) as cached:
            images, target = cached["images"], cached["target"]
        if images.shape == DIGITS_SHAPE and target.shape == DIGITS_SHAPE[:1]:
            return images, target
    except Exception:  # missing, truncated or foreign: made again below
        pass
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    try:
        atomic_write_bytes(path, lambda handle: np.savez(handle, images=bunch.images, target=bunch.target))
    except OSError:  # a read-only cache folder only costs the import next time
        pass
    return bunch.images, bunch.target
