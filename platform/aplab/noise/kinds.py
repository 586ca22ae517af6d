"""The noise generators: (clean labels, rate, classes, rng, context) -> noisy labels.

Every generator flips indices chosen from the ORIGINAL labels, so each source class realises exactly
its count even when two classes swap (the reference code's in-place cat<->dog defect cannot happen).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from .human import HumanLabels
from .maps import ASYMMETRIC_MAPS, MAP_ALIASES, USER_MAP_SYNTAX, is_user_map, parse_user_map


@dataclass(frozen=True)
class NoiseContext:
    """What some generators need beyond the labels: dataset (maps), features (instance), a human label set."""

    dataset: str | None = None
    map_name: str | None = None
    features: np.ndarray | None = None
    human: HumanLabels | None = None


Generator = Callable[[np.ndarray, float, int, np.random.Generator, NoiseContext], np.ndarray]
NOISE_KINDS: Registry[Generator] = Registry("noise kind")


def flip_count(rate: float, class_size: int) -> int:
    """int(rate * n), robust to float error (0.29 * 100 is 28.999...)."""
    return math.floor(rate * class_size + 1e-9)


def pick_per_class(labels: np.ndarray, rate: float, classes, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """For each class c, exactly flip_count(rate, n_c) of its indices, drawn without replacement."""
    chosen = {}
    for c in classes:
        members = np.flatnonzero(labels == c)
        chosen[int(c)] = np.sort(rng.choice(members, size=flip_count(rate, members.size), replace=False))
    return chosen


@NOISE_KINDS.register("none")
def no_noise(labels, rate, num_classes, rng, context):
    return labels.copy()


@NOISE_KINDS.register("symmetric")
def symmetric(labels, rate, num_classes, rng, context):
    """Exactly int(eta n_c) samples of each class c, each to a uniformly random OTHER class.

    The reference code flips int(eta N / K) per class (``noise.sampler=official``): the same on balanced
    CIFAR, while on MNIST's unequal classes aplab's per-class count keeps every class's realised rate at eta.
    """
    noisy = labels.copy()
    for c, idx in pick_per_class(labels, rate, range(num_classes), rng).items():
        noisy[idx] = (c + rng.integers(1, num_classes, size=idx.size)) % num_classes
    return noisy


@NOISE_KINDS.register("symmetric_uniform")
def symmetric_uniform(labels, rate, num_classes, rng, context):
    """Peers' variant: the same int(eta n_c) samples per class, each to a uniform class of ALL K.

    A draw may return the true class, so the realised rate is about eta (K - 1) / K.
    """
    noisy = labels.copy()
    for idx in pick_per_class(labels, rate, range(num_classes), rng).values():
        noisy[idx] = rng.integers(0, num_classes, size=idx.size)
    return noisy


def resolve_map(num_classes: int, context: NoiseContext) -> dict[int, int]:
    """The user's map in the spec, the map it names, else the dataset's; errors list the datasets with one."""
    if is_user_map(context.map_name):
        return parse_user_map(context.map_name, num_classes)
    name = context.map_name or MAP_ALIASES.get(context.dataset or "", context.dataset)
    if name is None or name not in ASYMMETRIC_MAPS:
        field = "noise map" if context.map_name else "dataset"
        raise ConfigError(field, name, "a dataset with an asymmetric map (" + ", ".join(
            [*ASYMMETRIC_MAPS.names(), *MAP_ALIASES]) + "), or a map of your own: " + USER_MAP_SYNTAX)
    map_classes, mapping = ASYMMETRIC_MAPS.get(name)
    if map_classes != num_classes:
        raise ConfigError("num_classes", num_classes, f"{map_classes} for the {name!r} asymmetric map")
    return mapping


def flip_by_map(labels, rate, rng, mapping: dict[int, int]) -> np.ndarray:
    noisy = labels.copy()
    for source, idx in pick_per_class(labels, rate, sorted(mapping), rng).items():
        noisy[idx] = mapping[source]
    return noisy


@NOISE_KINDS.register("asymmetric")
def asymmetric(labels, rate, num_classes, rng, context):
    """Class-conditional flips of the dataset's map, exactly int(eta n_c) per source class."""
    return flip_by_map(labels, rate, rng, resolve_map(num_classes, context))


@NOISE_KINDS.register("pairflip")
def pairflip(labels, rate, num_classes, rng, context):
    """Pair flipping (Han et al., 2018): class c to c + 1 mod K, exactly int(eta n_c) per class."""
    return flip_by_map(labels, rate, rng, {c: (c + 1) % num_classes for c in range(num_classes)})


@NOISE_KINDS.register("instance")
def instance(labels, rate, num_classes, rng, context):
    """Instance-dependent noise (Xia et al., NeurIPS 2020), vectorised per class.

    Per sample a flip rate q_i ~ N(eta, 0.1^2) truncated to [0, 1]; with W ~ N(0, 1) of shape
    [K, d, K], the other classes share q_i by softmax(x_i W[y_i]) (the true class masked out) and
    the true class keeps 1 - q_i; the noisy label is drawn from that distribution.
    """
    features = context.features
    if features is None:
        raise ConfigError("features", None, "an [N, d] array of per-sample features for instance noise")
    from scipy import stats  # only this generator needs SciPy (0.4 s to import)

    features = np.asarray(features, dtype=np.float64).reshape(len(labels), -1)
    n, dim = features.shape
    flip_rates = stats.truncnorm.rvs((0 - rate) / 0.1, (1 - rate) / 0.1, loc=rate, scale=0.1, size=n,
                                     random_state=rng)
    weights = rng.standard_normal((num_classes, dim, num_classes))
    noisy = labels.copy()
    uniforms = rng.random(n)
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        scores = features[idx] @ weights[c]
        scores[:, c] = -np.inf
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs = flip_rates[idx, None] * scores / scores.sum(axis=1, keepdims=True)
        probs[:, c] = 1.0 - flip_rates[idx]
        cumulative = np.cumsum(probs, axis=1)
        drawn = (cumulative < uniforms[idx, None] * cumulative[:, -1:]).sum(axis=1)
        noisy[idx] = np.minimum(drawn, num_classes - 1)
    return noisy


@NOISE_KINDS.register("human")
def human(labels, rate, num_classes, rng, context):
    """A published human label set (CIFAR-N), as annotated: class- and instance-dependent."""
    return context.human.labels.copy()


@NOISE_KINDS.register("human_like")
def human_like(labels, rate, num_classes, rng, context):
    """The human set's labels shuffled within each true class: its exact transition matrix and rate, instance-free.

    Each class c keeps exactly the human counts n_{c,j}, re-assigned to a uniformly random permutation
    of c's samples, so which image is mislabelled no longer depends on the image.
    """
    noisy = labels.copy()
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        noisy[idx] = context.human.labels[idx][rng.permutation(idx.size)]
    return noisy
