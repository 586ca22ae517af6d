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

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset as TorchDataset

from ..distributed import SINGLE, Rank, ignore_requeue_signal, rank_seed
from ..errors import ConfigError
from ..registry import Registry
from .augment import normalize
from .files import RankBatchSampler

JPEG_MAGIC = b"\xff\xd8"


class DeviceTransform(Protocol):
    """Decoded uint8 [3, H, W] images of any sizes on one device -> a normalised float [B, 3, S, S] batch."""

    def __call__(self, images: Sequence[torch.Tensor], generator: torch.Generator) -> torch.Tensor: ...


DEVICE_FILE_TRANSFORMS: Registry[Callable[[int, tuple, tuple], DeviceTransform]] = Registry("augmentation")


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


def random_resized_boxes(sizes: Sequence[tuple[int, int]], scale: tuple[float, float], ratio: tuple[float, float],
                         generator: torch.Generator, attempts: int = 10) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) per image, drawn as torchvision's RandomResizedCrop.get_params does:
    the first of ``attempts`` (area fraction, log-uniform aspect) draws that fits, else the centre fallback."""
    hw = torch.tensor(sizes, dtype=torch.float64).reshape(-1, 2)
    height, width = hw[:, :1], hw[:, 1:]
    b = hw.shape[0]
    area = height * width * torch.empty(b, attempts, dtype=torch.float64).uniform_(*scale, generator=generator)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.empty(b, attempts, dtype=torch.float64).uniform_(log_lo, log_hi, generator=generator))
    w = torch.sqrt(area * aspect).round()
    h = torch.sqrt(area / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)
    found = fits.any(dim=1, keepdim=True)
    in_ratio = width / height
    fallback_w = torch.where(in_ratio > max(ratio), (height * max(ratio)).round(), width)
    fallback_h = torch.where(in_ratio < min(ratio), (width / min(ratio)).round(), height)
    w = torch.where(found, w.gather(1, first), fallback_w)
    h = torch.where(found, h.gather(1, first), fallback_h)
    u = torch.rand(b, 2, dtype=torch.float64, generator=generator)
    top = torch.where(found, (u[:, :1] * (height - h + 1)).floor(), ((height - h) / 2).floor())
    left = torch.where(found, (u[:, 1:] * (width - w + 1)).floor(), ((width - w) / 2).floor())
    return [tuple(row) for row in torch.cat([top, left, h, w], dim=1).long().tolist()]


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma of float RGB [B, 3, H, W], as torchvision and PIL weigh it: [B, 1, H, W]."""
    r, g, b = x.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * x + (1.0 - factor) * other).clamp_(0.0, 1.0)


def _brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * x).clamp_(0.0, 1.0)  # the blend with a black image


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def _saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grayscale(x), factor)


# v <- value, p, q, t picked per hue sector (the table of torchvision's and PIL's HSV -> RGB).
_HSV_SECTOR_CHANNELS = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by its ``shift`` (a fraction of a turn) through HSV, as adjust_hue does."""
    r, g, b = x.unbind(dim=1)
    value, _ = x.max(dim=1)
    spread = value - x.min(dim=1).values
    ones = torch.ones_like(spread)
    saturation = spread / torch.where(value > 0, value, ones)
    safe = torch.where(spread > 0, spread, ones)
    sector = torch.where(value == r, (g - b) / safe,
                         torch.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = (torch.where(spread > 0, sector, 0.0) / 6.0 + shift[:, 0]).remainder(1.0)
    h6 = hue * 6.0
    index = h6.floor()
    frac = h6 - index
    p = value * (1.0 - saturation)
    q = value * (1.0 - saturation * frac)
    t = value * (1.0 - saturation * (1.0 - frac))
    vpqt = torch.stack([value, p, q, t], dim=1).clamp_(0.0, 1.0)
    table = torch.tensor(_HSV_SECTOR_CHANNELS, device=x.device)
    select = table[:, index.long().remainder(6)].movedim(0, 1)  # [B, 3, H, W] indices into vpqt
    return vpqt.gather(1, select)


COLOR_STEPS = (_brightness, _contrast, _saturation, _hue)  # ColorJitter's fn_idx 0..3


@dataclass(frozen=True)
class ColorJitterDraws:
    """Per image: the order of the four steps (a permutation of 0..3) and each step's factor."""

    order: torch.Tensor  # [B, 4] int64
    factors: torch.Tensor  # [B, 4] float64: brightness, contrast, saturation, hue shift


def draw_color_jitter(b: int, brightness: float, contrast: float, saturation: float, hue: float,
                      generator: torch.Generator) -> ColorJitterDraws:
    """ColorJitter's get_params for ``b`` images at once: factors uniform in [max(0, 1-x), 1+x], hue in [-h, h]."""
    order = torch.rand(b, 4, generator=generator).argsort(dim=1)
    lo = torch.tensor([max(0.0, 1 - brightness), max(0.0, 1 - contrast), max(0.0, 1 - saturation), -hue],
                      dtype=torch.float64)
    hi = torch.tensor([1 + brightness, 1 + contrast, 1 + saturation, hue], dtype=torch.float64)
    return ColorJitterDraws(order, lo + (hi - lo) * torch.rand(b, 4, dtype=torch.float64, generator=generator))


def color_jitter(x: torch.Tensor, draws: ColorJitterDraws) -> torch.Tensor:
    """Apply each image's four colour steps in its own order to float [B, 3, H, W] images in [0, 1]."""
    x = x.clone()
    for position in range(4):
        for step, apply in enumerate(COLOR_STEPS):
            chosen = (draws.order[:, position] == step).nonzero().flatten()
            if chosen.numel():
                factor = draws.factors[chosen, step].to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
                rows = chosen.to(x.device)
                x[rows] = apply(x[rows], factor)
    return x


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class WebVisionTrainOnDevice:
    """files.webvision_train on a batch: random resized crop, flip, colour jitter, normalise."""

    size: int
    mean: tuple
    std: tuple
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.2)  # brightness, contrast, saturation, hue

    def __call__(self, images: Sequence[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        from torchvision.transforms.v2.functional import resized_crop

        boxes = random_resized_boxes([tuple(im.shape[-2:]) for im in images], self.scale, self.ratio, generator)
        crops = torch.stack([resized_crop(im, *box, [self.size, self.size], antialias=True)
                             for im, box in zip(images, boxes)])
        flip = (torch.rand(len(images), generator=generator) < 0.5).to(crops.device)
        crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
        draws = draw_color_jitter(len(images), *self.jitter, generator=generator)
        jittered = _to_uint8(color_jitter(crops.float().div_(255.0), draws))
        return normalize(jittered, self.mean, self.std)


DEVICE_FILE_TRANSFORMS.register("webvision", WebVisionTrainOnDevice)


@dataclass(frozen=True)
class EvaluationOnDevice:
    """files.evaluation_transform on a batch: resize the short side to size * 256/224, centre crop, normalise."""

    size: int
    mean: tuple
    std: tuple

    def __call__(self, images: Sequence[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        from torchvision.transforms.v2.functional import center_crop, resize

        short_side = int(self.size * 256 / 224)
        crops = torch.stack([center_crop(resize(im, [short_side], antialias=True), [self.size, self.size])
                             for im in images])
        return normalize(crops, self.mean, self.std)
