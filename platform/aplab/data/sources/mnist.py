"""mnist: 28x28 grey digits in torchvision's layout, downloaded when missing, and its preset.

Files: ``<data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (uncompressed idx files;
torchvision downloads them when missing and ``download=True``, one process at a time under the lock).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...config.presets import DatasetPreset, anl_settings
from ...locks import file_lock
from .base import (DOWNLOAD_LOCK, Dataset, ImageTensors, data_dir_error, dir_or_default, int_labels, missing_files,
                   register_dataset)

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


def _mnist_split(reader, root: Path, train: bool, download: bool, expected: str):
    """torchvision's MNIST split (downloading the files when allowed and missing); a failure is one line."""
    try:
        return reader(root=str(root), train=train, download=download)
    except Exception as exc:  # download failure, or torchvision's reader rejecting a file
        raise data_dir_error(root, expected, f"could not load MNIST ({type(exc).__name__}: {exc})") from exc
