"""Batched image transforms on the training device, the tensor twins of ``files.py``'s PIL ones.

A whole decoded batch is cropped, flipped, colour-jittered and normalised at once on its device. Every
random draw comes from the one CPU generator passed in, so a seed gives the same draws on any device
(how they differ from the PIL path: ``gpu_decode``'s docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from ..registry import Registry
from .augment import normalize


class DeviceTransform(Protocol):
    """Decoded uint8 [3, H, W] images of any sizes on one device -> a normalised float [B, 3, S, S] batch."""

    def __call__(self, images: Sequence[torch.Tensor], generator: torch.Generator) -> torch.Tensor: ...


DEVICE_FILE_TRANSFORMS: Registry[Callable[[int, tuple, tuple], DeviceTransform]] = Registry("augmentation")


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
