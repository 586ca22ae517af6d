"""Batches on the training device: uint8 images held there, shuffled, augmented and normalised per batch.

No per-sample Python and no host transfer in the loop: a seeded permutation on the device picks each
batch, augmentation draws per-image crops/flips/angles from a device generator.

In a distributed run every rank draws the same permutation and augmentation as a run in one process
and keeps its slice of each global batch (``split_bounds``): the experiment is the single-process one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..data import AugmentSpec, augment_batch, normalize
from ..distributed import SINGLE, Rank, split_bounds
from ..errors import ConfigError


@dataclass
class Batch:
    images: torch.Tensor
    labels: torch.Tensor  # what the loss sees (noisy for training)
    clean: torch.Tensor
    flipped: torch.Tensor
    global_size: int  # samples of the global batch this one is a rank's slice of (its own size in one process)


def check_batch_split(batch_size: int, rank: Rank) -> None:
    """Each rank trains on at least two samples of every global batch (BatchNorm needs two): a smaller
    global batch is refused before the run starts, rather than left out of every epoch."""
    if rank.distributed and batch_size < 2 * rank.world_size:
        raise ConfigError("optim.batch_size", batch_size,
                          f"at least {2 * rank.world_size} on {rank.world_size} processes (two samples per process)")


class DeviceBatches:
    """One split of a small dataset, resident on the device."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, clean: torch.Tensor, flipped: torch.Tensor,
                 mean: tuple[float, ...], std: tuple[float, ...], batch_size: int, device: torch.device,
                 augment: AugmentSpec | None = None, shuffle: bool = False, channels_last: bool = False,
                 rank: Rank = SINGLE, dtype: torch.dtype = torch.float32):
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
        self.rank = rank
        self.dtype = dtype
        self.generator = torch.Generator(device=device)

    def __len__(self) -> int:
        return self.images.shape[0]

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images, self.mean, self.std, self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self) -> Iterator[Batch]:
        n, world = len(self), self.rank.world_size
        order = (torch.randperm(n, generator=self.generator, device=self.device) if self.shuffle
                 else torch.arange(n, device=self.device))
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            if self.shuffle and n > 1 and index.numel() // world < 2:
                if self.augment is not None and index.numel() > 1:  # one process trains it: make its draws, so
                    augment_batch(self.images[index], self.augment, self.generator)  # later epochs keep its order
                break  # BatchNorm cannot train on a rank's slice of one sample (or none); seen next epoch
            images = self.images[index]
            if self.augment is not None:  # the global batch's draws, as in one process; each rank keeps its slice
                images = augment_batch(images, self.augment, self.generator)
            lo, hi = split_bounds(index.numel(), world, self.rank.rank)
            local = index[lo:hi]
            yield Batch(self._prepare(images[lo:hi]), self.labels[local], self.clean[local], self.flipped[local],
                        index.numel())


class FileBatches:
    """One split of a file-based dataset (WebVision): decoded and transformed by DataLoader workers; a
    distributed training split loads this rank's slice of each global batch."""

    def __init__(self, paths: list[str], indices, labels: torch.Tensor, clean: torch.Tensor, flipped: torch.Tensor,
                 transform, batch_size: int, device: torch.device, shuffle: bool = False, channels_last: bool = False,
                 workers: int = 4, rank: Rank = SINGLE, decode: str = "cpu"):
        from ..data.files import file_loader
        from ..data.gpu_decode import DeviceDecodedFiles

        self.on_device = decode == "gpu"  # read by the workers, decoded and transformed on the device
        self.loader = (DeviceDecodedFiles(paths, indices, transform, batch_size, shuffle, device, workers=workers,
                                          rank=rank) if self.on_device else
                       file_loader(paths, indices, transform, batch_size, shuffle, seed=0, workers=workers, rank=rank))
        self.generator = self.loader.generator
        self.labels, self.clean, self.flipped = labels.to(device), clean.to(device), flipped.to(device)
        self.device = device
        self.channels_last = channels_last
        self.batch_size, self.shuffle = batch_size, shuffle

    def __len__(self) -> int:
        return len(self.loader.dataset)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __iter__(self) -> Iterator[Batch]:
        from ..data.files import iterate

        for images, index in self.loader if self.on_device else iterate(self.loader, self.device):
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            global_size = self.batch_size if self.shuffle else index.numel()  # shuffled: whole global batches only
            yield Batch(images, self.labels[index], self.clean[index], self.flipped[index], global_size)
