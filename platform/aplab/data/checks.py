"""Checks of the ``data.*`` config fields, owned by the package that reads them."""

from __future__ import annotations

from ..config import DataConfig
from ..errors import ConfigError, one_of
from ..registry import did_you_mean
from .augment import AUGMENTATIONS
from .files import FILE_TRANSFORMS
from .sources import available_datasets


def check_dataset(name: str) -> None:
    """A registered dataset (checked first: the dataset picks the preset that fills the other fields)."""
    names = available_datasets()
    if name not in names:
        raise ConfigError("data.name", name, one_of(names) + did_you_mean(name, names))


def check_data_config(data: DataConfig) -> None:
    """Once the preset filled them: a known augmentation (on-device or file transform), val_fraction in [0, 1)."""
    augmentations = [*AUGMENTATIONS.names(), *FILE_TRANSFORMS.names()]
    if data.augment not in augmentations:
        raise ConfigError("data.augment", data.augment,
                          one_of(augmentations) + did_you_mean(data.augment, augmentations))
    if not 0.0 <= data.val_fraction < 1.0:
        raise ConfigError("data.val_fraction", data.val_fraction, "a number in [0, 1)")
