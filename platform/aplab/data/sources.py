"""Dataset sources: each name loads clean train/test data from its real on-disk format.

Small datasets come back as uint8 tensors held in memory (``ImageTensors``); large ones as file
lists read per batch (``ImageFiles``). Layouts expected under ``data_dir`` (default
``default_data_dir()``):

- ``digits``: scikit-learn's bundled 8x8 digits; no files, no network; ``data_dir`` is ignored.
- ``mnist``: torchvision's layout, ``<data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
  (uncompressed idx files; downloaded by torchvision when missing and ``download=True``).
- ``cifar10``: ``<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
  (the python-pickle release); ``cifar100``: ``<data_dir>/cifar-100-python/{train, test, meta}``.
  When the folder is missing and ``download=True`` torchvision fetches and md5-checks the archive;
  the pickles are then read here, with an unpickler that only admits numpy arrays.
- ``webvision_mini``: local only (never downloaded). ``<root>`` is ``<data_dir>`` itself when it
  holds ``info/``, else ``<data_dir>/webvision``::

      <root>/info/train_filelist_google.txt   lines "google/q0001/xxx.jpg 0" (path relative to root)
      <root>/info/synsets.txt                 1000 lines "<wnid> [description]", in class order
      <root>/google/q0001/*.jpg ...           the WebVision 1.0 Google training images
      <root>/imagenet_val/<wnid>/*.JPEG       ILSVRC-2012 validation images sorted by class

  Train keeps the lines with label < 50 (the first 50 classes); test is the validation images of
  the first 50 wnids of ``synsets.txt``, labelled by that order.

Every user mistake (unknown name, missing or corrupt files) is a ``ConfigError`` naming the field.
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..locks import file_lock
from ..registry import Registry


@dataclass(frozen=True, eq=False)
class ImageTensors:
    """A small split held in memory: uint8 images [N, C, H, W] (CPU, contiguous) and int64 labels."""

    images: torch.Tensor
    labels: np.ndarray


@dataclass(frozen=True, eq=False)
class ImageFiles:
    """A large split read from disk per batch: absolute image paths and int64 labels."""

    paths: list[str]
    labels: np.ndarray


@dataclass(frozen=True, eq=False)
class Dataset:
    """Clean train/test data plus what a model and a normaliser need to know about it."""

    name: str
    num_classes: int
    train: ImageTensors | ImageFiles
    test: ImageTensors | ImageFiles
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units (normalise after /255)
    std: tuple[float, ...]
    channels: int
    image_size: int  # side of the stored (tensors) or model-input (files) images
    class_names: tuple[str, ...]


Loader = Callable[[Path | None, bool], Dataset]
DATASETS: Registry[Loader] = Registry("dataset")

DATA_DIR_FIELD = "data.data_dir"
#: The lock file in a data folder under which one process downloads a dataset while the others wait.
DOWNLOAD_LOCK = ".aplab-download.lock"

MNIST_STATS = ((0.1307,), (0.3081,))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


WEBVISION_MINI_CLASSES = 50
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


# ----------------------------------------------------------------------------- public entry points


def default_data_dir() -> Path:
    """Where datasets live unless told otherwise: ``$APLAB_DATA`` if set, else ``~/.cache/aplab/data``."""
    env = os.environ.get("APLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "aplab" / "data"


def available_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    return DATASETS.names()


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> Dataset:
    """Load dataset ``name`` from ``data_dir`` (default ``default_data_dir()``), downloading if allowed."""
    loader = DATASETS.get(name, field="data.name")
    return loader(Path(data_dir).expanduser() if data_dir is not None else None, download)


# ----------------------------------------------------------------------------- shared helpers


def _dir_or_default(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else default_data_dir()


def _data_dir_error(data_dir: Path, expected: str, problem: str) -> ConfigError:
    """A ConfigError on ``data.data_dir`` saying what is expected there and what went wrong."""
    return ConfigError(DATA_DIR_FIELD, str(data_dir), f"expected {expected}; {problem}")


def _missing_files(paths: Sequence[Path]) -> list[Path]:
    return [p for p in paths if not p.is_file()]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a data file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy>=2 home
        return getattr(importlib.import_module(module), name)


def _read_pickle(path: Path, data_dir: Path, expected: str) -> dict[str, Any]:
    """A CIFAR-style pickled dict with str keys, or a ConfigError saying the file is corrupt."""
    try:
        with path.open("rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # any failure to unpickle means a corrupt or foreign file
        raise _data_dir_error(data_dir, expected, f"{path} is corrupt ({exc})") from exc
    if not isinstance(obj, dict):
        raise _data_dir_error(data_dir, expected, f"{path} does not hold a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(d: dict[str, Any], key: str, path: Path, data_dir: Path, expected: str) -> Any:
    if key not in d:
        raise _data_dir_error(data_dir, expected, f"{path} has no {key!r} entry")
    return d[key]


def _int_labels(values: Any, n_classes: int, what: str, data_dir: Path, expected: str) -> np.ndarray:
    """Labels as int64, checked to lie in [0, n_classes)."""
    try:
        labels = np.asarray(values, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise _data_dir_error(data_dir, expected, f"{what} are not integers") from exc
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise _data_dir_error(data_dir, expected, f"{what} fall outside [0, {n_classes})")
    return labels


def _names(values: Any) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


# ----------------------------------------------------------------------------- digits


@DATASETS.register("digits")
def load_digits(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images), with a fixed stratified 80/20 split (seed 0)."""
    from .split import stratified_split

    raw_images, target = digits_arrays()
    # Pixel values are integers 0..16; rescale to 0..255 and round to the nearest integer.
    images = np.rint(raw_images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, 0.2, seed=0)
    train_images = images[train_idx] / 255.0
    return Dataset(
        name="digits",
        num_classes=10,
        train=ImageTensors(torch.from_numpy(np.ascontiguousarray(images[train_idx])), labels[train_idx]),
        test=ImageTensors(torch.from_numpy(np.ascontiguousarray(images[test_idx])), labels[test_idx]),
        mean=(float(train_images.mean()),),
        std=(float(train_images.std()),),
        channels=1,
        image_size=8,
        class_names=tuple(str(c) for c in range(10)),
    )


DIGITS_CACHE = "digits.npz"
DIGITS_SHAPE = (1797, 8, 8)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (images 0..16, targets), kept parsed in aplab's cache folder: importing
    ``sklearn.datasets`` costs about a second per process, a tenth of a small run's set-up."""
    from ..cache import cache_dir
    from ..atomic import atomic_write_bytes

    path = cache_dir() / DIGITS_CACHE
    try:
        with np.load(path) as cached:
            images, target = cached["images"], cached["target"]
        if images.shape == DIGITS_SHAPE and target.shape == DIGITS_SHAPE[:1]:
            return images, target
    except Exception:  # missing, truncated or foreign: made again below
        pass
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    try:
        atomic_write_bytes(path, lambda handle: np.savez(handle, images=bunch.images, target=bunch.target))
    except OSError:  # a read-only cache folder only costs the import next time
        pass
    return bunch.images, bunch.target


# ----------------------------------------------------------------------------- mnist

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@DATASETS.register("mnist")
def load_mnist(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """MNIST (28x28 grey) through torchvision's reader from ``<data_dir>/MNIST/raw``."""
    from torchvision.datasets import MNIST

    root = _dir_or_default(data_dir)
    raw = root / "MNIST" / "raw"
    expected = f"MNIST idx files {', '.join(_MNIST_FILES)} in {raw}"
    missing = _missing_files([raw / f for f in _MNIST_FILES])
    if missing and not download:
        raise _data_dir_error(root, expected, f"missing {missing[0]} (allow download to fetch it)")
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
            raise _data_dir_error(root, expected, problem)
        labels = _int_labels(labels, 10, "MNIST labels", root, expected)
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
        raise _data_dir_error(root, expected, f"could not load MNIST ({type(exc).__name__}: {exc})") from exc


# ----------------------------------------------------------------------------- cifar


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


def _download_cifar(layout: _CifarLayout, root: Path) -> None:
    """Fetch and md5-check the release through torchvision (only called when the folder is missing)."""
    import torchvision.datasets as tvd

    try:
        root.mkdir(parents=True, exist_ok=True)
        getattr(tvd, layout.torchvision_class)(root=str(root), train=True, download=True)
    except Exception as exc:  # network, disk, or checksum failure
        raise _data_dir_error(
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
            raise _data_dir_error(root, expected, problem)
        lab = _int_labels(_field(batch, layout.label_key, path, root, expected), layout.num_classes,
                          f"{path} {layout.label_key}", root, expected)  # fmt: skip
        if len(lab) != len(data):
            raise _data_dir_error(root, expected, f"{path} has {len(data)} images but {len(lab)} labels")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def _load_cifar(layout: _CifarLayout, data_dir: Path | None, download: bool) -> Dataset:
    root = _dir_or_default(data_dir)
    folder, expected = root / layout.folder, layout.expected(root)
    if not folder.is_dir():
        if not download:
            raise _data_dir_error(root, expected, f"{folder} does not exist (allow download to fetch it)")
        root.mkdir(parents=True, exist_ok=True)
        with file_lock(root / DOWNLOAD_LOCK):  # one process downloads; the others wait, then find the folder
            if not folder.is_dir():
                _download_cifar(layout, root)
    needed = (*layout.train_files, *layout.test_files, layout.meta_file)
    missing = _missing_files([folder / f for f in needed])
    if missing:
        raise _data_dir_error(root, expected, f"missing {missing[0]}")
    meta_path = folder / layout.meta_file
    meta = _read_pickle(meta_path, root, expected)
    names = _names(_field(meta, layout.names_key, meta_path, root, expected))
    if len(names) != layout.num_classes:
        problem = f"{meta_path} names {len(names)} classes, not {layout.num_classes}"
        raise _data_dir_error(root, expected, problem)
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


@DATASETS.register("cifar10")
def load_cifar10(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """CIFAR-10 from the python-pickle release in ``<data_dir>/cifar-10-batches-py``."""
    return _load_cifar(_CIFAR10, data_dir, download)


@DATASETS.register("cifar100")
def load_cifar100(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """CIFAR-100 (fine labels) from ``<data_dir>/cifar-100-python``."""
    return _load_cifar(_CIFAR100, data_dir, download)


# ----------------------------------------------------------------------------- webvision mini

_WEBVISION_EXPECTED = (
    "a WebVision 1.0 root (data_dir itself or data_dir/webvision) holding "
    "info/train_filelist_google.txt (lines 'google/q0001/x.jpg 0'), the google/ images, "
    "info/synsets.txt (1000 wnids in class order) and imagenet_val/<wnid>/*.JPEG"
)


def _read_lines(path: Path, data_dir: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _data_dir_error(data_dir, _WEBVISION_EXPECTED, f"cannot read {path} ({exc})") from exc


def _webvision_root(data_dir: Path) -> Path:
    return data_dir if (data_dir / "info").is_dir() else data_dir / "webvision"


def _webvision_train(root: Path, data_dir: Path) -> ImageFiles:
    """Google-subset training files of the first 50 classes, checked to exist (one listdir per folder)."""
    filelist = root / "info" / "train_filelist_google.txt"
    rel_paths: list[str] = []
    labels: list[int] = []
    for lineno, line in enumerate(_read_lines(filelist, data_dir), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise _data_dir_error(data_dir, _WEBVISION_EXPECTED, f"{filelist} line {lineno} is {line!r}")
        if int(parts[1]) < WEBVISION_MINI_CLASSES:
            rel_paths.append(parts[0])
            labels.append(int(parts[1]))
    if not rel_paths:
        raise _data_dir_error(data_dir, _WEBVISION_EXPECTED, f"{filelist} lists no image of classes 0..49")
    listings: dict[Path, set[str]] = {}
    for rel in rel_paths:
        path = root / rel
        if path.parent not in listings:
            listings[path.parent] = set(os.listdir(path.parent)) if path.parent.is_dir() else set()
        if path.name not in listings[path.parent]:
            raise _data_dir_error(data_dir, _WEBVISION_EXPECTED, f"missing {path} (listed in {filelist})")
    paths = [os.path.abspath(root / rel) for rel in rel_paths]
    checked = _int_labels(labels, WEBVISION_MINI_CLASSES, f"{filelist} labels", data_dir, _WEBVISION_EXPECTED)
    return ImageFiles(paths, checked)


def _webvision_test(root: Path, data_dir: Path) -> tuple[ImageFiles, tuple[str, ...]]:
    """ILSVRC-2012 validation images of the first 50 synsets, labelled by synsets.txt order."""
    synsets = root / "info" / "synsets.txt"
    wnids = [line.split()[0] for line in _read_lines(synsets, data_dir) if line.strip()]
    if len(wnids) < WEBVISION_MINI_CLASSES:
        problem = f"{synsets} lists {len(wnids)} wnids, fewer than {WEBVISION_MINI_CLASSES}"
        raise _data_dir_error(data_dir, _WEBVISION_EXPECTED, problem)
    wnids = wnids[:WEBVISION_MINI_CLASSES]
    paths: list[str] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = root / "imagenet_val" / wnid
        entries = folder.iterdir() if folder.is_dir() else ()
        files = sorted(p for p in entries if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise _data_dir_error(data_dir, _WEBVISION_EXPECTED, f"no validation images in {folder}")
        paths.extend(os.path.abspath(p) for p in files)
        labels.extend([label] * len(files))
    return ImageFiles(paths, np.asarray(labels, dtype=np.int64)), tuple(wnids)


@DATASETS.register("webvision_mini")
def load_webvision_mini(data_dir: Path | None = None, download: bool = True) -> Dataset:
    """WebVision-mini: first 50 classes of the Google subset; test on their ILSVRC-2012 val images."""
    data_dir = _dir_or_default(data_dir)
    root = _webvision_root(data_dir)
    for need in (root / "info" / "train_filelist_google.txt", root / "info" / "synsets.txt"):
        if not need.is_file():
            raise _data_dir_error(data_dir, _WEBVISION_EXPECTED, f"missing {need} (it cannot be downloaded)")
    train = _webvision_train(root, data_dir)
    test, wnids = _webvision_test(root, data_dir)
    return Dataset(
        name="webvision_mini",
        num_classes=WEBVISION_MINI_CLASSES,
        train=train,
        test=test,
        mean=IMAGENET_STATS[0],
        std=IMAGENET_STATS[1],
        channels=3,
        image_size=224,
        class_names=wnids,
    )
