"""mnist: 28x28 grey digits in torchvision's layout, downloaded when missing, its preset, and the IDX reader.

Files: ``<data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (uncompressed idx files;
torchvision downloads them when missing and ``download=True``, one process at a time under the lock).
``read_idx`` reads one IDX file, plain or gzipped, checked against its expected size and checksum
(Fashion-MNIST's loader reads the Debian package's ``.gz`` files with it).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from ...config.presets import DatasetPreset, anl_settings
from ...locks import file_lock
from .base import (DOWNLOAD_LOCK, Dataset, ImageTensors, data_dir_error, dir_or_default, int_labels, missing_files,
                   one_line, register_dataset)

MNIST_STATS = ((0.1307,), (0.3081,))

#: The authors' MNIST configs (configs/mnist/{sym,asym}/*.yaml): weight decay 1e-2 (NLNL 1e-3), Nesterov
#: momentum, cosine floor 1e-3, beta 10; the paper's text: weight decay 1e-3, beta 100. The successors' MNIST
#: configs: weight decay 1e-3 (ANL 0), no Nesterov, floor 0; they run the asymmetric losses alone (alpha 0).
PRESET = DatasetPreset(
    model="cnn4", epochs=50, lr=0.01, weight_decay=1e-2, nesterov=True, eta_min=1e-3, augment="none",
    apl=(1.0, 10.0), sce=(0.01, 1.0), ngce_q=0.1,
    paper={"apl": (1.0, 100.0), "weight_decay": 1e-3, "nesterov": False, "eta_min": None},
    code_per_loss={"nlnl": {"weight_decay": 1e-3}},
    successor_training={"weight_decay": 1e-3, "nesterov": False, "eta_min": None},
    successors={**anl_settings(1.0, 1.0, 1e-6),
                "agce": {"a": 4.0, "q": 0.2}, "aul": {"a": 3.0, "q": 0.1}, "ael": {"a": 3.5}})

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@register_dataset("mnist", preset=PRESET)
def load_mnist(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """MNIST (28x28 grey) through torchvision's reader from ``<data_dir>/MNIST/raw``."""
    from torchvision.datasets import MNIST

    root = dir_or_default(data_dir)
    raw = root / "MNIST" / "raw"
    expected = f"MNIST idx files {', '.join(_MNIST_FILES)} in {raw}"
    missing = missing_files([raw / f for f in _MNIST_FILES])
    if missing and not download:
        raise data_dir_error(root, expected, f"missing {missing[0]} (allow download to fetch it)")
    if missing:  # one process downloads (ranks of a run, pipeline workers); the others then find the files
        root.mkdir(parents=True, exist_ok=True)
        with file_lock(root / DOWNLOAD_LOCK):
            _mnist_split(MNIST, root, True, download, expected)
    splits = []
    for train in (True, False):
        ds = _mnist_split(MNIST, root, train, download, expected)
        images, labels = ds.data, np.asarray(ds.targets, dtype=np.int64)
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (28, 28) or len(images) != len(labels):
            problem = f"files hold images {tuple(images.shape)} and {len(labels)} labels"
            raise data_dir_error(root, expected, problem)
        labels = int_labels(labels, 10, "MNIST labels", root, expected)
        splits.append(ImageTensors(images.unsqueeze(1).contiguous(), labels))
    return Dataset(
        name="mnist",
        num_classes=10,
        train=splits[0],
        test=splits[1],
        mean=MNIST_STATS[0],
        std=MNIST_STATS[1],
        channels=1,
        image_size=28,
        class_names=tuple(str(c) for c in range(10)),
    )


#: IDX type codes (the third byte of the magic number) aplab reads: unsigned bytes only.
_IDX_UBYTE = 0x08


def read_idx(path: Path, shape: tuple[int, ...], md5: str | None, root: Path, expected: str) -> torch.Tensor:
    """The uint8 array of IDX file ``path`` (gzipped when it ends in .gz), checked to hold ``shape`` and,
    given ``md5``, to have that checksum of its uncompressed bytes; every problem one line naming the file."""
    def fail(problem: str) -> Exception:
        return data_dir_error(root, expected, f"{path}: {problem}")

    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            data = f.read()
    except (OSError, EOFError) as exc:  # unreadable, or a truncated / corrupt gzip stream
        raise fail(f"cannot be read ({one_line(exc)})") from exc
    size = 4 + 4 * len(shape) + int(np.prod(shape))
    if len(data) != size:
        raise fail(f"holds {len(data)} bytes, expected {size} (an IDX file of uint8 {shape})")
    magic = (0, 0, _IDX_UBYTE, len(shape))
    if tuple(data[:4]) != magic:
        raise fail(f"starts with {data[:4].hex()}, expected the IDX magic {bytes(magic).hex()}")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(len(shape)))
    if dims != shape:
        raise fail(f"declares shape {dims}, expected {shape}")
    if md5 is not None and hashlib.md5(data).hexdigest() != md5:
        raise fail(f"uncompressed md5 {hashlib.md5(data).hexdigest()}, expected {md5} (a changed or damaged file)")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=size - int(np.prod(shape))).view(shape)


def _mnist_split(reader, root: Path, train: bool, download: bool, expected: str):
    """torchvision's MNIST split (downloading the files when allowed and missing); a failure is one line."""
    try:
        return reader(root=str(root), train=train, download=download)
    except Exception as exc:  # download failure, or torchvision's reader rejecting a file
        raise data_dir_error(root, expected, f"could not load MNIST ({one_line(exc)})") from exc
