"""Batches on the training device: uint8 images held there, shuffled, augmented and normalised per batch.

No per-sample Python and no host transfer in the loop: a seeded permutation on the device picks each
batch, augmentation draws per-image crops/flips/angles from a device generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..data import AugmentSpec, augment_batch, normalize


@dataclass
class Batch:
    images: torch.Tensor
    labels: torch.Tensor  # what the loss sees (noisy for training)
    clean: torch.Tensor
    flipped: torch.Tensor


class DeviceBatches:
    """One split of a small dataset, resident on the device."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor, flipped: torch.Tensor,
                 mean: tuple[float, ...], std: tuple[float, ...], batch_size: int, device: torch.device,
                 augment: AugmentSpec | None = None, shuffle: bool = False, channels_last: bool = False):
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.clean = clean.to(device)
        self.flipped = flipped.to(device)
        self.mean, self.std = mean, std
        self.batch_size = batch_size
        self.device = device
        self.augment = augment
        self.shuffle = shuffle
        self.channels_last = channels_last
        self.generator = torch.Generator(device=device)

    def __len__(self) -> int:
        return self.images.shape[0]

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.augment is not None:
            images = augment_batch(images, self.augment, self.generator)
        x = normalize(images, self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self) -> Iterator[Batch]:
        n = len(self)
        order = (torch.randperm(n, generator=self.generator, device=self.device) if self.shuffle
                 else torch.arange(n, device=self.device))
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            if self.shuffle and index.numel() == 1 and n > 1:
                break  # BatchNorm cannot train on a batch of one; that sample is seen next epoch
            yield Batch(self._prepare(self.images[index]), self.labels[index], self.clean[index], self.flipped[index])


class FileBatches:
    """One split of a file-based dataset (WebVision): decoded and transformed by DataLoader workers."""

    def __init__(self, paths: list[str], indices, labels: torch.Tensor, clean: torch.Tensor, flipped: torch.Tensor,
                 transform, batch_size: int, device: torch.device, shuffle: bool = False, channels_last: bool = False,
                 workers: int = 4):
        from ..data.files import file_loader

        self.loader = file_loader(paths, indices, transform, batch_size, shuffle, seed=0, workers=workers)
        self.generator = self.loader.generator
        self.labels, self.clean, self.flipped = labels.to(device), clean.to(device), flipped.to(device)
        self.device = device
        self.channels_last = channels_last

    def __len__(self) -> int:
        return len(self.loader.dataset)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __iter__(self) -> Iterator[Batch]:
        from ..data.files import iterate

        for images, index in iterate(self.loader, self.device):
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield Batch(images, self.labels[index], self.clean[index], self.flipped[index])
