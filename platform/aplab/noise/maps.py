"""Class-conditional (asymmetric) flip maps: source class -> target class, per dataset, or the user's own.

A map of one's own is written in the spec: ``asymmetric:0.4:map=0>6,2>4,5>7`` (source>target pairs).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..registry import Registry

#: How a spec names a map of the user's own, and its syntax for error messages.
USER_MAP_PREFIX = "map="
USER_MAP_SYNTAX = "'asymmetric:<rate>:map=<source>><target>,...' such as 'asymmetric:0.4:map=0>6,2>4,5>7'"

#: Fine -> coarse (superclass) index of the 100 CIFAR-100 classes, as in the dataset's own meta files.
CIFAR100_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
], dtype=np.int64)
CIFAR100_COARSE.setflags(write=False)


def circular_within_groups(groups: list[list[int]]) -> dict[int, int]:
    """Each class flips to the next class of its group, the last one back to the first."""
    return {g[i]: g[(i + 1) % len(g)] for g in groups for i in range(len(g))}


def cifar100_consecutive_groups() -> list[list[int]]:
    """The field's CIFAR-100 map: 20 groups of 5 consecutive indices (NOT the real superclasses)."""
    return [list(range(start, start + 5)) for start in range(0, 100, 5)]


def cifar100_superclass_groups() -> list[list[int]]:
    """The true CIFAR-100 superclasses, each as its 5 fine classes in index order."""
    return [np.flatnonzero(CIFAR100_COARSE == c).tolist() for c in range(20)]


#: name -> (number of classes, {source: target})
ASYMMETRIC_MAPS: Registry[tuple[int, dict[int, int]]] = Registry("asymmetric noise map")
ASYMMETRIC_MAPS.register("mnist", (10, {7: 1, 2: 7, 5: 6, 6: 5, 3: 8}))
# truck -> automobile, bird -> airplane, cat <-> dog, deer -> horse
ASYMMETRIC_MAPS.register("cifar10", (10, {9: 1, 2: 0, 3: 5, 5: 3, 4: 7}))
ASYMMETRIC_MAPS.register("cifar100", (100, circular_within_groups(cifar100_consecutive_groups())))
ASYMMETRIC_MAPS.register("cifar100_superclass", (100, circular_within_groups(cifar100_superclass_groups())))

#: Datasets whose classes are those of a mapped dataset (the embedded digits are the digits 0-9).
MAP_ALIASES = {"digits": "mnist"}


def is_user_map(name: str | None) -> bool:
    """Whether a spec's map part is a map of the user's own (``map=...``) rather than a registered name."""
    return name is not None and name.startswith(USER_MAP_PREFIX)


def parse_user_map(text: str, num_classes: int | None = None) -> dict[int, int]:
    """``"map=0>6,2>4"`` -> {0: 6, 2: 4}: pairs of class indices, no class mapped to itself or twice, and
    given ``num_classes``, every class in [0, num_classes); each problem one line naming the pair."""
    body = text[len(USER_MAP_PREFIX):]
    mapping: dict[int, int] = {}
    for pair in body.split(","):
        source, sep, target = pair.partition(">")
        if not sep or not all(part.strip().isascii() and part.strip().isdigit() for part in (source, target)):
            raise ConfigError("noise map pair", pair, "<source>><target> with class indices, in " + USER_MAP_SYNTAX)
        a, b = int(source), int(target)
        if a == b:
            raise ConfigError("noise map pair", pair, "a source and a different target (no class maps to itself)")
        if a in mapping:
            raise ConfigError("noise map pair", pair, f"each source once (class {a} is already mapped to {mapping[a]})")
        if num_classes is not None and max(a, b) >= num_classes:
            raise ConfigError("noise map pair", pair, f"class indices in [0, {num_classes}) for this dataset")
        mapping[a] = b
    return mapping


def user_map_name(mapping: dict[int, int]) -> str:
    """The canonical spec part of a user map: pairs sorted by source."""
    return USER_MAP_PREFIX + ",".join(f"{a}>{b}" for a, b in sorted(mapping.items()))
