"""Label noise as pure functions: (clean labels, spec, classes, seed) -> noisy labels + transition matrix.

``corrupt(labels, "symmetric:0.4", num_classes=10, seed=0)`` never reads or changes global random
state: the same inputs and seed give the same labels on any machine (NumPy's PCG64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .kinds import NOISE_KINDS, NoiseContext
from .maps import ASYMMETRIC_MAPS, CIFAR100_COARSE
from .spec import NoiseSpec, parse_spec

__all__ = ["ASYMMETRIC_MAPS", "CIFAR100_COARSE", "NoiseSpec", "NoisyLabels", "available", "corrupt",
           "parse_spec", "transition_matrix"]


@dataclass(frozen=True)
class NoisyLabels:
    """Noisy labels with what was realised: transition matrix (rows = true class), rate, flip mask."""

    labels: np.ndarray
    transition: np.ndarray
    rate: float
    flipped: np.ndarray
    spec: NoiseSpec


def available() -> list[str]:
    """The noise kinds."""
    return NOISE_KINDS.names()


def transition_matrix(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """Realised K x K matrix T[i, j] = P(noisy = j | clean = i); a class with no sample gets an identity row."""
    counts = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(counts, (clean, noisy), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    empty = totals[:, 0] == 0
    counts[empty, np.flatnonzero(empty)] = 1.0
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def _check_labels(labels: object, num_classes: int) -> np.ndarray:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ConfigError("num_classes", num_classes, "an integer >= 2")
    array = np.asarray(labels)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ConfigError("labels", f"array of shape {array.shape} and dtype {array.dtype}",
                          "a 1-D integer array of class indices")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        bad = int(array.min()) if array.min() < 0 else int(array.max())
        raise ConfigError("labels", bad, f"class indices in [0, {num_classes})")
    return array.astype(np.int64)


def corrupt(labels: np.ndarray, spec: str | NoiseSpec, num_classes: int, seed: int,
            dataset: str | None = None, features: np.ndarray | None = None) -> NoisyLabels:
    """Corrupt clean labels by ``spec`` (e.g. ``"symmetric:0.4"``); a pure function of its inputs."""
    clean = _check_labels(labels, num_classes)
    parsed = parse_spec(spec, available())
    rng = np.random.default_rng(seed)
    context = NoiseContext(dataset=dataset, map_name=parsed.map_name, features=features)
    noisy = NOISE_KINDS.get(parsed.kind)(clean, parsed.rate, int(num_classes), rng, context)
    flipped = noisy != clean
    return NoisyLabels(
        labels=noisy.astype(np.int64),
        transition=transition_matrix(clean, noisy, int(num_classes)),
        rate=float(flipped.mean()) if clean.size else 0.0,
        flipped=flipped,
        spec=parsed,
    )
