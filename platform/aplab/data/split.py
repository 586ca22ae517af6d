"""Stratified train/validation split: a pure function of (labels, fraction, seed)."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from ..errors import ConfigError


def _check_fraction(fraction: object) -> float:
    """``fraction`` as a float in [0, 1), or a ConfigError on ``data.val_fraction``."""
    ok = isinstance(fraction, Real) and not isinstance(fraction, bool)
    if ok:
        value = float(fraction)  # type: ignore[arg-type]
        if math.isfinite(value) and 0.0 <= value < 1.0:
            return value
    raise ConfigError("data.val_fraction", fraction, "a number in [0, 1) (0 means no validation set)")


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train_idx, val_idx), stratified on ``labels``.

    In every class ``c`` with ``n_c`` samples exactly ``floor(fraction * n_c + 0.5)`` samples
    (``fraction * n_c`` rounded half up) go to validation, chosen uniformly at random with
    ``np.random.default_rng(seed)``; global random state is never touched. Both outputs are
    sorted int64, disjoint, and together cover ``range(len(labels))``. Note that a class with
    very few samples can go wholly to validation (e.g. ``n_c = 1`` and ``fraction >= 0.5``).
    """
    frac = _check_fraction(fraction)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    # Group indices by class, in a random order inside each class (lexsort is stable; the
    # random permutation is the secondary key, so the order inside a class is uniform).
    order = np.lexsort((rng.permutation(n), labels))
    _, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    rank_in_class = np.arange(n) - np.repeat(starts, counts)
    n_val = np.floor(frac * counts + 0.5).astype(np.int64)
    is_val = rank_in_class < np.repeat(n_val, counts)
    val_idx = np.sort(order[is_val]).astype(np.int64, copy=False)
    train_idx = np.sort(order[~is_val]).astype(np.int64, copy=False)
    return train_idx, val_idx
