"""WebVision batches decoded on the training device (``runtime.decode = "gpu"``).

DataLoader workers only read each file's bytes; the main process decodes a whole batch at once with
``torchvision.io.decode_jpeg(..., device=...)`` (nvJPEG on CUDA, libjpeg-turbo on CPU) and applies the
transforms of ``files.py`` to the batch on that device. Every random draw (crop box, flip, colour-jitter
factors and order) comes from one CPU generator seeded from the loader's, so a seed gives the same draws
on any device.

What differs from the CPU path (PIL in workers, ``files.py``):
- decoder: nvJPEG on CUDA (or torchvision's libjpeg-turbo on CPU, equal to PIL's pixels in the tests)
  instead of PIL's libjpeg; nvJPEG's IDCT and chroma upsampling may move pixels by a few levels;
- resizing: torchvision's antialiased bilinear kernel on tensors instead of PIL's bilinear filter
  (they agree to within one level);
- colour jitter: computed in float32 and rounded to uint8 once at the end, where PIL rounds after each
  of its four steps, takes contrast's mean as a rounded integer and shifts hue in 8-bit HSV;
- random draws: the same distributions as torchvision's RandomResizedCrop, RandomHorizontalFlip and
  ColorJitter (per image, random step order included), from this generator instead of each worker's
  RNG, so the two paths draw different augmentations for the same seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset as TorchDataset

from ..distributed import SINGLE, Rank, ignore_requeue_signal, rank_seed
from ..errors import ConfigError
from .device_transforms import DeviceTransform
from .files import RankBatchSampler

JPEG_MAGIC = b"\xff\xd8"


def check_decode(decode: str, device: torch.device) -> None:
    """runtime.decode=gpu needs a CUDA device to train on: otherwise one ConfigError line, before any run."""
    if decode != "gpu":
        return
    if not torch.cuda.is_available():
        raise ConfigError("runtime.decode", decode, "cpu on this machine (no CUDA device is visible)")
    if device.type != "cuda":
        raise ConfigError("runtime.decode", decode, f"cpu when runtime.device is {device.type} (gpu needs cuda)")


# ----------------------------------------------------------------------------- reading and decoding


class EncodedFiles(TorchDataset):
    """(file bytes as a uint8 tensor, index) pairs: the only work left to DataLoader workers."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from torchvision.io import read_file

        return read_file(self.paths[index]), index


@dataclass(frozen=True)
class EncodedBatch:
    """A batch of encoded files as one flat uint8 tensor (one storage to pass between processes, not one per
    file) with each file's length, and the files' indices."""

    flat: torch.Tensor
    lengths: torch.Tensor
    index: torch.Tensor

    def files(self) -> list[torch.Tensor]:
        return list(torch.split(self.flat, self.lengths.tolist()))


def collate_encoded(samples: list[tuple[torch.Tensor, int]]) -> EncodedBatch:
    """Concatenate a batch's encoded files (their lengths differ) in the worker."""
    data, index = zip(*samples)
    return EncodedBatch(torch.cat(data), torch.tensor([d.numel() for d in data]), torch.tensor(index))


def decode_images(data: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """uint8 RGB [3, H, W] images on ``device``: JPEGs in one batched decode_jpeg call there; other formats
    (the ImageNet validation folders may hold PNGs) with decode_image on the CPU, then moved."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    is_jpeg = [bytes(d[:2].tolist()) == JPEG_MAGIC for d in data]
    jpegs = [d for d, j in zip(data, is_jpeg) if j]
    decoded = iter(decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device) if jpegs else [])
    return [next(decoded) if j else decode_image(d, mode=ImageReadMode.RGB).to(device) for d, j in zip(data, is_jpeg)]


def start_reader(worker_id: int) -> None:
    """A reading worker's start (``worker_init_fn``): SIGUSR2 ignored (``distributed.ignore_requeue_signal``)."""
    ignore_requeue_signal()


class DeviceDecodedFiles:
    """(normalised images, index) batches on ``device`` from a list of image files; a drop-in for
    ``files.iterate(files.file_loader(...))`` with the same ``generator`` and ``dataset`` attributes.

    An epoch's order (``files.RankBatchSampler``: this rank's slice of each global batch) and augmentation
    come from ``generator`` alone, drawn when the epoch starts: the same state gives the same epoch whatever
    ran before it (first epoch or a later one, resumed or not); each rank draws its own augmentations from
    (that state, its rank). The workers draw nothing, so they persist.
    """

    def __init__(self, paths: list[str], indices, transform: DeviceTransform, batch_size: int, shuffle: bool,
                 device: torch.device, seed: int = 0, workers: int = 4, rank: Rank = SINGLE):
        self.generator = torch.Generator().manual_seed(seed)
        self.dataset = EncodedFiles([paths[i] for i in indices])
        sampler = RankBatchSampler(len(self.dataset), batch_size, shuffle, self.generator, rank)
        # The workers draw nothing; their own generator keeps the loader off torch's global RNG.
        self.loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers,
                                 collate_fn=collate_encoded, generator=torch.Generator(),
                                 persistent_workers=workers > 0, worker_init_fn=start_reader)
        self.rank = rank
        self.transform = transform
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seed = int(torch.randint(2**62, (1,), generator=self.generator))  # the same on every rank
        draws = torch.Generator().manual_seed(rank_seed(seed, self.rank.rank))  # this rank's own augmentations
        for batch in self.loader:
            images = self.transform(decode_images(batch.files(), self.device), draws)
            yield images, batch.index.to(self.device, non_blocking=True)


# ----------------------------------------------------------------------------- batched transforms
