"""Dataset sources: each name loads clean train/test data from its real on-disk format, with its preset.

One module per source (digits, mnist, fashion_mnist, cifar, webvision_mini) registers its loader and its training preset
together in ``base.DATASETS``; importing this package registers them all. Small datasets come back as
uint8 tensors held in memory (``ImageTensors``), large ones as file lists read per batch (``ImageFiles``).
A new dataset: a module here with one ``@register_dataset(name, preset=...)`` loader, imported below.
"""

from . import cifar, digits, fashion_mnist, mnist, webvision_mini  # each registers its dataset
from .base import (DATA_DIR_FIELD, DATASETS, DOWNLOAD_LOCK, Dataset, DatasetSource, ImageFiles, ImageTensors, Loader,
                   available_datasets, default_data_dir, load_dataset, register_dataset)

__all__ = ["DATA_DIR_FIELD", "DATASETS", "DOWNLOAD_LOCK", "Dataset", "DatasetSource", "ImageFiles", "ImageTensors",
           "Loader", "available_datasets", "cifar", "default_data_dir", "digits", "fashion_mnist", "load_dataset",
           "mnist", "register_dataset", "webvision_mini"]
