"""What every dataset source shares: the data types, the DATASETS registry (loader + preset), data folders.

A source module registers its loader and its training preset in one decorator, ``@register_dataset(name,
preset=...)``; ``load_dataset`` looks the name up. Every user mistake is a ``ConfigError`` naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config.presets import DatasetPreset
from ...errors import ConfigError
from ...registry import Registry


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


@dataclass(frozen=True)
class DatasetSource:
    """One registered dataset: how to load it and the papers' training settings for it."""

    load: Loader
    preset: DatasetPreset


DATASETS: Registry[DatasetSource] = Registry("dataset")

DATA_DIR_FIELD = "data.data_dir"
#: The lock file in a data folder under which one process downloads a dataset while the others wait.
DOWNLOAD_LOCK = ".aplab-download.lock"


def register_dataset(name: str, *, preset: DatasetPreset) -> Callable[[Loader], Loader]:
    """Decorator: register the loader under ``name`` together with its preset; the loader comes back as is."""

    def decorator(load: Loader) -> Loader:
        DATASETS.register(name, DatasetSource(load=load, preset=preset))
        return load

    return decorator


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
    source = DATASETS.get(name, field="data.name")
    return source.load(Path(data_dir).expanduser() if data_dir is not None else None, download)


# ----------------------------------------------------------------------------- helpers of the loaders


def dir_or_default(data_dir: Path | None) -> Path:
    """``data_dir``, or the default data folder when it is None."""
    return data_dir if data_dir is not None else default_data_dir()


def data_dir_error(data_dir: Path, expected: str, problem: str) -> ConfigError:
    """A ConfigError on ``data.data_dir`` saying what is expected there and what went wrong."""
    return ConfigError(DATA_DIR_FIELD, str(data_dir), f"expected {expected}; {problem}")


def one_line(exc: BaseException) -> str:
    """An exception as one line, its type and its message's whitespace (torchvision's newlines) collapsed."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def missing_files(paths: Sequence[Path]) -> list[Path]:
    """The paths that are not files, in order."""
    return [p for p in paths if not p.is_file()]


def int_labels(values: Any, n_classes: int, what: str, data_dir: Path, expected: str) -> np.ndarray:
    """Labels as int64, checked to lie in [0, n_classes)."""
    try:
        labels = np.asarray(values, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise data_dir_error(data_dir, expected, f"{what} are not integers") from exc
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise data_dir_error(data_dir, expected, f"{what} fall outside [0, {n_classes})")
    return labels
