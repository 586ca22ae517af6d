"""Batches of image files read from disk (WebVision): torchvision transforms in DataLoader workers.

Datasets too large for the device (66k images at 224 px) take this path; small ones stay on the device.
In a distributed run each rank loads its slice of every global batch of the epoch's seeded order
(``RankBatchSampler``), so the ranks together see the single-process run's batches.
torchvision is imported when a transform is made, not with this module (its names are known without it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset as TorchDataset, Sampler

from ..distributed import SINGLE, Rank, ignore_requeue_signal, rank_seed, split_bounds
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


class RankBatchSampler(Sampler[list[int]]):
    """This rank's slice of each global batch: of a permutation drawn from ``generator`` (the same on every
    rank), or of the items in order. Shuffled, an incomplete last batch is dropped, as in one process."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, generator: torch.Generator, rank: Rank = SINGLE):
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.generator, self.rank = generator, rank

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.size, generator=self.generator).tolist() if self.shuffle else range(self.size)
        for start in range(0, self.size, self.batch_size):
            batch = order[start:start + self.batch_size]
            if self.shuffle and len(batch) < self.batch_size:
                return
            lo, hi = split_bounds(len(batch), self.rank.world_size, self.rank.rank)
            yield list(batch[lo:hi])

    def __len__(self) -> int:
        full, rest = divmod(self.size, self.batch_size)
        return full + (0 if self.shuffle or not rest else 1)


def start_worker(rank: int, worker_id: int) -> None:
    """A DataLoader worker's start (``worker_init_fn``): SIGUSR2 ignored; on a rank other than 0, torch and
    Python reseeded from (the worker's seed, rank), so each rank draws its own augmentations while an epoch
    still follows from the generator's state (the worker's seed comes from it). Rank 0 keeps the worker's
    seed: a run in one process draws as before."""
    ignore_requeue_signal()
    if rank:
        seed = rank_seed(torch.initial_seed(), rank)
        torch.manual_seed(seed)
        random.seed(seed)


def file_loader(paths: list[str], indices: np.ndarray, transform, batch_size: int, shuffle: bool,
                seed: int, workers: int = 4, rank: Rank = SINGLE) -> DataLoader:
    """Batches of (images, positions in ``indices``); a training loader shuffles with a generator the run
    checkpoints (its state decides the next epoch) and gives this rank its slice of each global batch."""
    generator = torch.Generator().manual_seed(seed)
    subset = ImageFileDataset([paths[i] for i in indices], transform)
    sampler = RankBatchSampler(len(subset), batch_size, shuffle, generator, rank)
    # Not persistent: each epoch starts its workers with a seed drawn from ``generator`` just before the
    # epoch's order, so an epoch (order and augmentation) follows from the generator's state alone and a
    # resumed run repeats the uninterrupted one (persistent workers keep the first epoch's seed, so epoch 1
    # would differ from any later epoch started from the same state). Every rank's loader draws the same worker
    # seeds from ``generator`` (the same on every rank): ``start_worker`` turns them into this rank's own.
    return DataLoader(subset, batch_sampler=sampler, num_workers=workers, pin_memory=torch.cuda.is_available(),
                      generator=generator, persistent_workers=False,
                      worker_init_fn=partial(start_worker, rank.rank))


def iterate(loader: DataLoader, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for images, index in loader:
        yield images.to(device, non_blocking=True), index.to(device, non_blocking=True)
