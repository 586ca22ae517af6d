"""cifar10 and cifar100: the python-pickle releases, downloaded when missing, and their presets.

Files: ``<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``<data_dir>/cifar-100-python/{train, test, meta}``. When the folder is missing and ``download=True``
torchvision fetches and md5-checks the archive (one process, under the lock); the pickles are then read
here, with an unpickler that only admits numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config.presets import DatasetPreset, anl_settings
from ...locks import file_lock
from .base import (DOWNLOAD_LOCK, Dataset, ImageTensors, data_dir_error, dir_or_default, int_labels, missing_files,
                   register_dataset)
from .unpickler import load_numpy_pickle

CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))

CIFAR10_PRESET = DatasetPreset(
    model="cnn8", epochs=120, lr=0.01, weight_decay=1e-4, augment="crop_flip",
    apl=(1.0, 1.0), sce=(0.1, 1.0), ngce_q=0.1,
    successors={**anl_settings(5.0, 5.0, 5e-5, lamb=2.0),
                "nce+agce": {"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5},
                "nce+aul": {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5},
                "nce+ael": {"alpha": 1.0, "beta": 4.0, "a": 5.0}})
CIFAR100_PRESET = DatasetPreset(
    model="resnet50", epochs=200, lr=0.1, weight_decay=1e-5, augment="crop_flip_rotate",
    apl=(10.0, 0.1), apl_beta_with_mae=1.0, sce=(6.0, 0.1), ngce_q=0.7,
    successors={**anl_settings(10.0, 1.0, 5e-7, lamb=0.01),
                "nce+agce": {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0},
                "nce+aul": {"alpha": 10.0, "beta": 0.015, "a": 6.0, "q": 3.0},
                "nce+ael": {"alpha": 10.0, "beta": 0.1, "a": 1.5}},
    successor_model="resnet34", paper={"model": "resnet34", "apl_beta_with_mae": None})


@dataclass(frozen=True)
class _CifarLayout:
    """Where one CIFAR release lives and how its pickles name things."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    stats: tuple[tuple[float, ...], tuple[float, ...]]
    torchvision_class: str

    def expected(self, root: Path) -> str:
        files = ", ".join(self.train_files + self.test_files + (self.meta_file,))
        return f"the CIFAR python release, {files} in {root / self.folder}"


_CIFAR10 = _CifarLayout(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
    stats=CIFAR10_STATS,
    torchvision_class="CIFAR10",
)
_CIFAR100 = _CifarLayout(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    stats=CIFAR100_STATS,
    torchvision_class="CIFAR100",
)


def _read_pickle(path: Path, data_dir: Path, expected: str) -> dict[str, Any]:
    """A CIFAR-style pickled dict with str keys, or a ConfigError saying the file is corrupt."""
    try:
        with path.open("rb") as f:
            obj = load_numpy_pickle(f)
    except Exception as exc:  # any failure to unpickle means a corrupt or foreign file
        raise data_dir_error(data_dir, expected, f"{path} is corrupt ({exc})") from exc
    if not isinstance(obj, dict):
        raise data_dir_error(data_dir, expected, f"{path} does not hold a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(d: dict[str, Any], key: str, path: Path, data_dir: Path, expected: str) -> Any:
    """``d[key]``, or a ConfigError saying the file lacks that entry."""
    if key not in d:
        raise data_dir_error(data_dir, expected, f"{path} has no {key!r} entry")
    return d[key]


def _names(values: Any) -> tuple[str, ...]:
    """Class names as str (the pickles may hold bytes)."""
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _download_cifar(layout: _CifarLayout, root: Path) -> None:
    """Fetch and md5-check the release through torchvision (only called when the folder is missing)."""
    import torchvision.datasets as tvd

    try:
        root.mkdir(parents=True, exist_ok=True)
        getattr(tvd, layout.torchvision_class)(root=str(root), train=True, download=True)
    except Exception as exc:  # network, disk, or checksum failure
        raise data_dir_error(
            root, layout.expected(root), f"the folder is missing and the download failed ({exc})"
        ) from exc


def _read_cifar_files(layout: _CifarLayout, files: Sequence[str], root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate batches: uint8 images [N, 3, 32, 32] and labels."""
    folder, expected = root / layout.folder, layout.expected(root)
    images, labels = [], []
    for fname in files:
        path = folder / fname
        batch = _read_pickle(path, root, expected)
        data = np.asarray(_field(batch, "data", path, root, expected))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            problem = f"{path} 'data' is {data.dtype} {data.shape}, not uint8 [N, 3072]"
            raise data_dir_error(root, expected, problem)
        lab = int_labels(_field(batch, layout.label_key, path, root, expected), layout.num_classes,
                          f"{path} {layout.label_key}", root, expected)  # fmt: skip
        if len(lab) != len(data):
            raise data_dir_error(root, expected, f"{path} has {len(data)} images but {len(lab)} labels")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def _load_cifar(layout: _CifarLayout, data_dir: Path | None, download: bool) -> Dataset:
    root = dir_or_default(data_dir)
    folder, expected = root / layout.folder, layout.expected(root)
    if not folder.is_dir():
        if not download:
            raise data_dir_error(root, expected, f"{folder} does not exist (allow download to fetch it)")
        root.mkdir(parents=True, exist_ok=True)
        with file_lock(root / DOWNLOAD_LOCK):  # one process downloads; the others wait, then find the folder
            if not folder.is_dir():
                _download_cifar(layout, root)
    needed = (*layout.train_files, *layout.test_files, layout.meta_file)
    missing = missing_files([folder / f for f in needed])
    if missing:
        raise data_dir_error(root, expected, f"missing {missing[0]}")
    meta_path = folder / layout.meta_file
    meta = _read_pickle(meta_path, root, expected)
    names = _names(_field(meta, layout.names_key, meta_path, root, expected))
    if len(names) != layout.num_classes:
        problem = f"{meta_path} names {len(names)} classes, not {layout.num_classes}"
        raise data_dir_error(root, expected, problem)
    tr_x, tr_y = _read_cifar_files(layout, layout.train_files, root)
    te_x, te_y = _read_cifar_files(layout, layout.test_files, root)
    return Dataset(
        name=layout.name,
        num_classes=layout.num_classes,
        train=ImageTensors(torch.from_numpy(np.ascontiguousarray(tr_x)), tr_y),
        test=ImageTensors(torch.from_numpy(np.ascontiguousarray(te_x)), te_y),
        mean=layout.stats[0],
        std=layout.stats[1],
        channels=3,
        image_size=32,
        class_names=names,
    )


@register_dataset("cifar10", preset=CIFAR10_PRESET)
def load_cifar10(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """CIFAR-10 from the python-pickle release in ``<data_dir>/cifar-10-batches-py``."""
    return _load_cifar(_CIFAR10, data_dir, download)


@register_dataset("cifar100", preset=CIFAR100_PRESET)
def load_cifar100(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """CIFAR-100 (fine labels) from ``<data_dir>/cifar-100-python``."""
    return _load_cifar(_CIFAR100, data_dir, download)
