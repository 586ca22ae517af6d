"""Datasets: sources (clean train/test, each with its preset), the stratified validation split, on-device
augmentation."""

from __future__ import annotations

from .augment import AUGMENTATIONS, AugmentSpec, augment_batch, normalize
from .checks import check_data_config, check_dataset
from .sources import Dataset, ImageFiles, ImageTensors, available_datasets, default_data_dir, load_dataset
from .split import stratified_split

__all__ = ["AUGMENTATIONS", "AugmentSpec", "Dataset", "ImageFiles", "ImageTensors", "augment_batch",
           "available_datasets", "check_data_config", "check_dataset", "default_data_dir", "load_dataset", "normalize",
           "stratified_split"]
