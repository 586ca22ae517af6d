"""The reference code's samplers (HanxunH/Active-Passive-Losses, ``dataset.py``), for ``noise.sampler=official``.

They draw from ``np.random.RandomState(seed)`` in the reference code's call order, so a seed gives the
labels the reference code gives with that seed (it seeds NumPy's global state with it before building
the training set). How they differ from aplab's exact per-class counts:

- symmetric: ``int(int(eta N) / K)`` samples of EVERY class, whatever its size (MNIST's classes differ);
- asymmetric on mnist / cifar100: each sample drawn independently from T = (1 - eta) I + eta P_map, so
  per-class counts vary around eta;
- asymmetric on cifar10: ``int(eta n_c)`` per source class, flipped in place in the order
  truck, bird, cat, dog, deer, so dog's draw also takes cats just flipped to dog (and flips them back).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from .kinds import NoiseContext, resolve_map

SAMPLER_FIELD = "noise.sampler"
#: How the reference code draws asymmetric noise per dataset (``digits`` is MNIST's classes).
ASYMMETRIC_STYLE = {"mnist": "independent", "digits": "independent", "cifar100": "independent",
                    "cifar10": "in_place"}
#: The reference code's order of cifar10's source classes: truck, bird, cat, dog, deer.
CIFAR10_SOURCE_ORDER = (9, 2, 3, 5, 4)

#: kind -> (clean labels, rate, classes, RandomState, dataset) -> noisy labels
OFFICIAL_SAMPLERS: Registry[Callable[..., np.ndarray]] = Registry("official sampler")


def check_official(kind: str, dataset: str | None, map_name: str | None) -> None:
    """Refuse (naming noise.sampler) a spec the reference code has no sampler for."""
    if kind not in OFFICIAL_SAMPLERS:
        raise ConfigError(SAMPLER_FIELD, "official", "unset for noise kind " + repr(kind) + ": the reference code "
                          "samples only " + ", ".join(OFFICIAL_SAMPLERS.names()))
    if kind == "asymmetric" and (map_name is not None or dataset not in ASYMMETRIC_STYLE):
        what = f"map {map_name!r}" if map_name is not None else f"dataset {dataset!r}"
        raise ConfigError(SAMPLER_FIELD, "official", f"unset for asymmetric noise with {what}: the reference code "
                          "has asymmetric noise for " + ", ".join(sorted(ASYMMETRIC_STYLE)) + " with their own maps")


def sample_official(labels: np.ndarray, kind: str, rate: float, num_classes: int, seed: int,
                    dataset: str | None, map_name: str | None = None) -> np.ndarray:
    """Noisy labels as the reference code draws them for ``kind`` at ``rate`` with ``seed`` (a combination
    ``check_official`` allows: ``corrupt`` checks it first)."""
    return OFFICIAL_SAMPLERS.get(kind)(labels, rate, num_classes, np.random.RandomState(seed), dataset)


@OFFICIAL_SAMPLERS.register("none")
def official_none(labels, rate, num_classes, state, dataset):
    """Clean labels."""
    return labels.copy()


@OFFICIAL_SAMPLERS.register("symmetric")
def official_symmetric(labels, rate, num_classes, state, dataset):
    """The same count int(int(eta N) / K) from every class, each to a uniformly drawn other class."""
    per_class = int(int(rate * labels.size) / num_classes)
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if members.size < per_class:
            raise ConfigError(SAMPLER_FIELD, "official", f"unset here: class {c} has {members.size} samples, fewer "
                              f"than the {per_class} the reference sampler flips in every class")
        chosen.append(state.choice(members, per_class, replace=False))
    noisy = labels.copy()
    others = [[k for k in range(num_classes) if k != c] for c in range(num_classes)]  # built once, same draws
    for index in np.concatenate(chosen):
        noisy[index] = state.choice(others[labels[index]])
    return noisy


@OFFICIAL_SAMPLERS.register("asymmetric")
def official_asymmetric(labels, rate, num_classes, state, dataset):
    """MNIST / CIFAR-100: independent draws from T; CIFAR-10: exact counts flipped in place, in the code's order."""
    mapping = resolve_map(num_classes, NoiseContext(dataset=dataset))
    if ASYMMETRIC_STYLE[dataset] == "in_place":
        noisy = labels.copy()
        for source in CIFAR10_SOURCE_ORDER:
            members = np.flatnonzero(noisy == source)  # the CURRENT labels, as in the reference code
            noisy[state.choice(members, int(rate * members.size), replace=False)] = mapping[source]
        return noisy
    transition = np.eye(num_classes)
    for source, target in mapping.items():
        transition[source, source], transition[source, target] = 1.0 - rate, rate
    noisy = labels.copy()
    for index, label in enumerate(labels):
        noisy[index] = np.flatnonzero(state.multinomial(1, transition[label], 1)[0])[0]
    return noisy
