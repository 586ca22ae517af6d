"""fashion_mnist: Zalando's 28x28 grey clothing images, from torchvision's layout or Debian's package, and its preset.

Read, in order, from the first folder holding all four IDX files (each plain or ``.gz``):
``<data_dir>/FashionMNIST/raw`` (torchvision's layout; downloaded there when missing and ``download=True``,
one process at a time under the lock), then ``/usr/share/datasets/fashion-mnist`` (``apt-get install -y
dataset-fashion-mnist``: gzipped IDX read in place, nothing copied or downloaded). Each file is checked
against its size and the md5 of its uncompressed bytes (the Debian files are re-stamped gzips of the same
bytes, so the checksums of torchvision's ``.gz`` downloads do not apply to them; these do to both).
The preset is MNIST's protocol (Fashion-MNIST runs it unchanged), under the same fidelity switch.
"""

from __future__ import annotations

from pathlib import Path

from ...locks import file_lock
from .base import (DOWNLOAD_LOCK, Dataset, ImageTensors, data_dir_error, dir_or_default, int_labels, one_line,
                   register_dataset)
from .mnist import PRESET as MNIST_PRESET
from .mnist import read_idx

#: Where Debian's ``dataset-fashion-mnist`` puts the files (``dpkg -L dataset-fashion-mnist``).
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
APT_PACKAGE = "dataset-fashion-mnist"

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
#: Per-channel mean and std of the 60,000 training images in [0, 1] pixel units (the published 0.2860, 0.3530).
FASHION_STATS = ((0.2860,), (0.3530,))

#: file -> (IDX shape, md5 of the uncompressed bytes)
FILES: dict[str, tuple[tuple[int, ...], str]] = {
    "train-images-idx3-ubyte": ((60000, 28, 28), "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte": ((60000,), "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte": ((10000, 28, 28), "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte": ((10000,), "15d484375f8d13e6eb1aabb0c3f46965"),
}

PRESET = MNIST_PRESET


def raw_folder(root: Path) -> Path:
    """torchvision's folder of the files under data folder ``root``."""
    return root / "FashionMNIST" / "raw"


def find_files(folder: Path) -> dict[str, Path] | None:
    """Each file's path in ``folder`` (plain preferred to ``.gz``), or None unless all four are there."""
    found = {}
    for name in FILES:
        plain, packed = folder / name, folder / f"{name}.gz"
        path = plain if plain.is_file() else packed if packed.is_file() else None
        if path is None:
            return None
        found[name] = path
    return found


@register_dataset("fashion_mnist", preset=PRESET)
def load_fashion_mnist(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """Fashion-MNIST (60,000 + 10,000 28x28 grey images, 10 classes) from the first folder that has it."""
    root = dir_or_default(data_dir)
    folders = (raw_folder(root), *SYSTEM_DIRS)
    expected = (f"Fashion-MNIST IDX files {', '.join(FILES)} (plain or .gz) in {folders[0]} or "
                f"{', '.join(map(str, SYSTEM_DIRS))} (apt-get install -y {APT_PACKAGE})")
    files = next((found for found in map(find_files, folders) if found is not None), None)
    if files is None and not download:
        raise data_dir_error(root, expected, "not found (install the package, or allow download to fetch them)")
    if files is None:  # one process downloads (ranks of a run, pipeline workers); the others then find the files
        _download(root, expected)
        files = find_files(raw_folder(root))
        if files is None:
            raise data_dir_error(root, expected, "the download left some files missing")
    splits = []
    for prefix in ("train", "t10k"):
        images = read_idx(files[f"{prefix}-images-idx3-ubyte"], *FILES[f"{prefix}-images-idx3-ubyte"], root, expected)
        labels = read_idx(files[f"{prefix}-labels-idx1-ubyte"], *FILES[f"{prefix}-labels-idx1-ubyte"], root, expected)
        labels = int_labels(labels.numpy(), 10, f"Fashion-MNIST {prefix} labels", root, expected)
        splits.append(ImageTensors(images.unsqueeze(1).contiguous(), labels))
    return Dataset(name="fashion_mnist", num_classes=10, train=splits[0], test=splits[1], mean=FASHION_STATS[0],
                   std=FASHION_STATS[1], channels=1, image_size=28, class_names=CLASS_NAMES)


def _download(root: Path, expected: str) -> None:
    """torchvision's download into ``<root>/FashionMNIST/raw`` under the data folder's lock; a failure is one line."""
    from torchvision.datasets import FashionMNIST

    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / DOWNLOAD_LOCK):
        if find_files(raw_folder(root)) is not None:  # another process downloaded them while this one waited
            return
        try:
            FashionMNIST(root=str(root), train=True, download=True)
        except Exception as exc:  # no network, a refused mirror, a checksum torchvision rejected
            raise data_dir_error(root, expected, f"could not download ({one_line(exc)})") from exc
