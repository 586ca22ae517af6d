"""Human label sets of CIFAR-10N / CIFAR-100N (Wei et al., ICLR 2022): find, load safely, check, fingerprint.

The published files are ``torch.save`` dicts of NumPy int64 arrays aligned with the CIFAR python
release's training order. They are read with ``torch.load(weights_only=True)`` and only the NumPy
globals an int array needs, allowed for this one call (``torch.serialization.safe_globals``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError

FILE_FIELD = "noise.file"
SPEC_FIELD = "noise.spec"
CIFAR_N_FOLDER = "cifar-n"
SOURCE_HINT = "published in github.com/UCSC-REAL/cifar-10-100n, folder data/"


@dataclass(frozen=True)
class HumanSet:
    """One published label set: the dataset it annotates and its key in the file."""

    dataset: str
    key: str


#: spec name -> label set ("worse_label" is the file's own spelling)
HUMAN_SETS: dict[str, HumanSet] = {
    "aggre": HumanSet("cifar10", "aggre_label"),
    "rand1": HumanSet("cifar10", "random_label1"),
    "rand2": HumanSet("cifar10", "random_label2"),
    "rand3": HumanSet("cifar10", "random_label3"),
    "worst": HumanSet("cifar10", "worse_label"),
    "noisy": HumanSet("cifar100", "noisy_label"),
}
#: dataset -> (file name, number of classes)
HUMAN_FILES: dict[str, tuple[str, int]] = {"cifar10": ("CIFAR-10_human.pt", 10), "cifar100": ("CIFAR-100_human.pt", 100)}


@dataclass(frozen=True)
class HumanLabels:
    """A checked human label set: its noisy labels, where they came from and the file's SHA-256."""

    key: str
    labels: np.ndarray
    path: Path
    sha256: str


def human_set(name: str, dataset: str | None) -> HumanSet:
    """The label set ``name``, refused (naming noise.spec) unless the run's dataset is the one it annotates."""
    entry = HUMAN_SETS[name]
    if dataset != entry.dataset:
        others = ", ".join(n for n, s in HUMAN_SETS.items() if s.dataset == dataset)
        allowed = f"human label set {name!r} annotates {entry.dataset}, not {dataset}"
        raise ConfigError(SPEC_FIELD, f"human:{name}", allowed + (f" (its sets: {others})" if others else ""))
    return entry


def human_file(dataset: str, data_dir: str | Path | None = None, file: str | Path | None = None) -> Path:
    """``file`` if given, else ``<data_dir>/cifar-n/<CIFAR-10|CIFAR-100>_human.pt``; refused when missing."""
    if file is None:
        from ..data.sources import default_data_dir  # the one rule for the default data folder

        root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        path = root / CIFAR_N_FOLDER / HUMAN_FILES[dataset][0]
    else:
        path = Path(file).expanduser()
    if not path.is_file():
        raise ConfigError(FILE_FIELD, str(path), f"an existing file: put {HUMAN_FILES[dataset][0]} ({SOURCE_HINT}) "
                          f"there, or set noise.file to its path")
    return path


def _read_label_dict(path: Path) -> object:
    """Unpickle ``path`` admitting only NumPy integer arrays (a scoped allow-list: nothing is registered globally).

    NumPy's array rebuild function is taken from ``ndarray.__reduce__`` (public) rather than imported
    from its private module, and allowed under both the NumPy 1 and NumPy 2 names files carry.
    """
    import torch

    rebuild = np.zeros(0).__reduce__()[0]
    integer_dtypes = [type(np.dtype(kind)) for kind in ("int64", "int32")]
    allowed = [np.ndarray, np.dtype, *integer_dtypes, (rebuild, "numpy.core.multiarray._reconstruct"),
               (rebuild, "numpy._core.multiarray._reconstruct")]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_human_labels(name: str, dataset: str, clean: np.ndarray, data_dir: str | Path | None = None,
                      file: str | Path | None = None) -> HumanLabels:
    """Label set ``name`` for ``dataset``'s training labels ``clean``, checked key by key; ConfigError otherwise."""
    entry = human_set(name, dataset)
    path = human_file(dataset, data_dir, file)
    num_classes = HUMAN_FILES[dataset][1]

    def refuse(problem: str) -> ConfigError:
        return ConfigError(FILE_FIELD, str(path), f"a CIFAR-N label file for {dataset} ({SOURCE_HINT}); {problem}")

    try:
        content = _read_label_dict(path)
    except Exception as exc:  # any failure to unpickle safely means a corrupt or foreign file
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise refuse(f"it cannot be read as a dict of NumPy arrays ({reason})") from None
    if not isinstance(content, dict):
        raise refuse(f"it holds a {type(content).__name__}, not a dict of label arrays")
    arrays = {}
    for key in ("clean_label", entry.key):
        if key not in content:
            raise refuse(f"it has no {key!r} entry (keys: {', '.join(map(str, content)) or 'none'})")
        array = content[key]
        if not isinstance(array, np.ndarray) or array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise refuse(f"{key!r} is not a 1-D integer array")
        if array.size != clean.size:
            raise refuse(f"{key!r} has {array.size} labels, the {dataset} training set {clean.size}")
        if array.size and (array.min() < 0 or array.max() >= num_classes):
            raise refuse(f"{key!r} holds labels outside [0, {num_classes})")
        arrays[key] = array.astype(np.int64)
    wrong = np.flatnonzero(arrays["clean_label"] != clean)
    if wrong.size:
        raise refuse(f"'clean_label' disagrees with the {dataset} training labels at {wrong.size} of {clean.size} "
                     f"positions (first at index {wrong[0]}): misaligned (another image order?)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return HumanLabels(entry.key, arrays[entry.key], path, digest)
