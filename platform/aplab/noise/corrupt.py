"""Corrupting labels: a spec and a seed in, noisy labels and what was realised out (a pure function).

``corrupt`` never reads or changes global random state; ``check_config`` validates a run's noise section
without reading files or labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..keys import P_HUMAN_FILE, P_HUMAN_FILE_SHA256, P_HUMAN_LABELS
from .human import HUMAN_SETS, human_set, load_human_labels
from .kinds import NOISE_KINDS, NoiseContext
from .maps import ASYMMETRIC_MAPS, MAP_ALIASES, USER_MAP_SYNTAX
from .official import SAMPLER_FIELD, check_official, sample_official
from .spec import LABEL_SET_KINDS, NoiseSpec, parse_spec

#: noise.sampler values: None = aplab's exact per-class counts; "official" = the reference code's draws.
SAMPLERS = (None, "official")


@dataclass(frozen=True)
class NoisyLabels:
    """Noisy labels with what was realised: transition matrix (rows = true class), rate, flip mask.

    ``provenance`` holds what a run must record beyond the spec (a human label set, its file and digest).
    """

    labels: np.ndarray
    transition: np.ndarray
    rate: float
    flipped: np.ndarray
    spec: NoiseSpec
    provenance: dict[str, str] = field(default_factory=dict)


def available() -> list[str]:
    """The noise kinds."""
    return NOISE_KINDS.names()


def required_dataset(spec: str | NoiseSpec) -> str | None:
    """The only dataset a spec applies to (a human label set's), or None when it applies to any."""
    parsed = parse_spec(spec, available())
    return HUMAN_SETS[parsed.label_set].dataset if parsed.label_set is not None else None


def check_config(spec: str, dataset: str, sampler: str | None = None, file: str | None = None) -> str:
    """Validate a run's noise section without reading files or labels; returns the normalised spec.

    Refusals are ConfigErrors naming ``noise.spec``, ``noise.sampler`` or ``noise.file``. A human label
    file is read (and its absence refused) by ``corrupt``, which a run calls before it creates anything:
    resolving a pipeline needs no data.
    """
    try:
        parsed = parse_spec(spec, available())
    except ConfigError as err:
        raise ConfigError("noise.spec", spec, f"{err.field} {err.value!r}: {err.allowed}") from None
    if sampler not in SAMPLERS:
        raise ConfigError(SAMPLER_FIELD, sampler, "unset (aplab's exact per-class counts) or 'official'")
    if sampler is not None:
        check_official(parsed.kind, dataset, parsed.map_name)
    if parsed.kind == "asymmetric" and parsed.map_name is None and not has_map(dataset):
        raise ConfigError("noise.spec", spec, f"a map for dataset {dataset!r}, which has none: {USER_MAP_SYNTAX}")
    if parsed.label_set is not None:
        human_set(parsed.label_set, dataset)
    elif file is not None:
        raise ConfigError("noise.file", file, "unset: only " + " and ".join(f"{k}:<set>" for k in LABEL_SET_KINDS)
                          + " read a label file")
    return str(parsed)


def has_map(dataset: str | None) -> bool:
    """Whether plain ``asymmetric:<rate>`` has a map for ``dataset`` (its own or an alias's)."""
    return MAP_ALIASES.get(dataset or "", dataset) in ASYMMETRIC_MAPS


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
            dataset: str | None = None, features: np.ndarray | None = None, *,
            data_dir: str | Path | None = None, file: str | Path | None = None,
            sampler: str | None = None) -> NoisyLabels:
    """Corrupt clean labels by ``spec`` (e.g. ``"symmetric:0.4"``, ``"human:aggre"``); a pure function of its inputs.

    ``data_dir`` / ``file`` locate a human label set (``file`` wins); ``sampler="official"`` draws as the
    reference code does (see ``noise.official``).
    """
    clean = _check_labels(labels, num_classes)
    parsed = parse_spec(spec, available())
    provenance: dict[str, str] = {}
    if sampler is not None:
        check_config(str(parsed), dataset, sampler)
        noisy = sample_official(clean, parsed.kind, parsed.rate, int(num_classes), seed, dataset, parsed.map_name)
    else:
        human = None
        if parsed.label_set is not None:
            human = load_human_labels(parsed.label_set, dataset, clean, data_dir=data_dir, file=file)
            provenance = {P_HUMAN_LABELS: human.key, P_HUMAN_FILE: str(human.path), P_HUMAN_FILE_SHA256: human.sha256}
        context = NoiseContext(dataset=dataset, map_name=parsed.map_name, features=features, human=human)
        noisy = NOISE_KINDS.get(parsed.kind)(clean, parsed.rate, int(num_classes), np.random.default_rng(seed), context)
    flipped = noisy != clean
    return NoisyLabels(
        labels=noisy.astype(np.int64),
        transition=transition_matrix(clean, noisy, int(num_classes)),
        rate=float(flipped.mean()) if clean.size else 0.0,
        flipped=flipped,
        spec=parsed,
        provenance=provenance,
    )
