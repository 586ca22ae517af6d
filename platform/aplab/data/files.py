"""Batches of image files read from disk (WebVision): torchvision transforms in DataLoader workers.

Datasets too large for the device (66k images at 224 px) take this path; small ones stay on the device.
torchvision is imported when a transform is made, not with this module (its names are known without it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset as TorchDataset

from ..registry import Registry

if TYPE_CHECKING:
    from torchvision import transforms

FILE_TRANSFORMS: Registry[Callable[[int, tuple, tuple], transforms.Compose]] = Registry("augmentation")


@FILE_TRANSFORMS.register("webvision")
def webvision_train(size: int, mean: tuple, std: tuple) -> transforms.Compose:
    """The reference WebVision training transform: random resized crop, flip, colour jitter."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
        transforms.ToTensor(), transforms.Normalize(mean, std),
    ])


def evaluation_transform(size: int, mean: tuple, std: tuple) -> transforms.Compose:
    """Resize to size * 256/224, centre crop: the ImageNet evaluation protocol."""
    from torchvision import transforms

    return transforms.Compose([transforms.Resize(int(size * 256 / 224)), transforms.CenterCrop(size),
                               transforms.ToTensor(), transforms.Normalize(mean, std)])


class ImageFileDataset(TorchDataset):
    """(image tensor, index) pairs from a list of paths; labels travel separately on the device."""

    def __init__(self, paths: list[str], transform: transforms.Compose):
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB")), index


def file_loader(paths: list[str], indices: np.ndarray, transform, batch_size: int, shuffle: bool,
                seed: int, workers: int = 4) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    subset = ImageFileDataset([paths[i] for i in indices], transform)
    return DataLoader(subset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, pin_memory=True,
                      drop_last=shuffle, generator=generator, persistent_workers=workers > 0)


def iterate(loader: DataLoader, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for images, index in loader:
        yield images.to(device, non_blocking=True), index.to(device, non_blocking=True)
