"""Augmentation of whole [B, C, H, W] batches on the training device, drawn independently per image.

The order and semantics follow the authors' torchvision pipeline, applied to uint8 images before
normalisation: RandomCrop(size, padding=p, fill 0) -> RandomHorizontalFlip(0.5) -> RandomRotation(d).
Everything is vectorised (one pad, one gather, one ``torch.where``, one ``grid_sample``); randomness
comes only from the given generator, so the same seed gives the same batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, one_of
from ..registry import Registry

INTERPOLATIONS = ("bilinear", "nearest")


@dataclass(frozen=True)
class AugmentSpec:
    """What to draw per image: a zero-padded random crop, a horizontal flip, a random rotation.

    ``rotation_interpolation`` defaults to bilinear; torchvision's RandomRotation (and so the authors'
    CIFAR-100 runs) defaults to nearest, which is one option away.
    """

    crop_padding: int = 0
    flip: bool = False
    rotation_degrees: float = 0.0
    rotation_interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ConfigError("augment.crop_padding", self.crop_padding, "an integer >= 0")
        if not isinstance(self.flip, bool):
            raise ConfigError("augment.flip", self.flip, "true or false")
        degrees = self.rotation_degrees
        if isinstance(degrees, bool) or not isinstance(degrees, (int, float)) or not 0 <= degrees <= 180:
            raise ConfigError("augment.rotation_degrees", degrees, "a number in [0, 180]")
        if self.rotation_interpolation not in INTERPOLATIONS:
            raise ConfigError(
                "augment.rotation_interpolation", self.rotation_interpolation, one_of(INTERPOLATIONS)
            )

    @property
    def is_identity(self) -> bool:
        """True when the spec changes nothing (no padding, no flip, no rotation)."""
        return self.crop_padding == 0 and not self.flip and self.rotation_degrees == 0


AUGMENTATIONS: Registry[AugmentSpec] = Registry("augmentation")
AUGMENTATIONS.register("none", AugmentSpec())
AUGMENTATIONS.register("crop_flip", AugmentSpec(crop_padding=4, flip=True))  # CIFAR-10
# CIFAR-100: torchvision's RandomRotation(20) as the authors ran it, nearest interpolation.
AUGMENTATIONS.register(
    "crop_flip_rotate", AugmentSpec(crop_padding=4, flip=True, rotation_degrees=20.0, rotation_interpolation="nearest")
)


def _check_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError("images", shape, "a [B, C, H, W] tensor")


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Crop each image at its own random offset in [0, 2p]^2 from its zero-padded copy (one gather).

    The padded batch is viewed as all its [H, W] windows (``unfold``, no copy); advanced indexing then
    copies out window (top_i, left_i) of each image i.
    """
    b, c, h, w = images.shape
    device = images.device
    padded = images.new_zeros((b, c, h + 2 * padding, w + 2 * padding))
    padded[:, :, padding : padding + h, padding : padding + w] = images
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # [B, C, 2p+1, 2p+1, H, W], a view
    return windows[torch.arange(b, device=device), :, top, left]  # [B, C, H, W]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 0.5, independently."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def rotate_batch(images: torch.Tensor, degrees: torch.Tensor, interpolation: str = "bilinear") -> torch.Tensor:
    """Rotate image i counter-clockwise by ``degrees[i]`` about its centre, zero fill, same size.

    Matches torchvision's tensor ``rotate`` (fill=None); integer images are rounded back to their dtype.
    """
    b, _, h, w = images.shape
    work_dtype = images.dtype if images.dtype == torch.float64 else torch.float32
    rad = degrees.to(device=images.device, dtype=work_dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(cos)
    # Output -> input map in normalised coordinates (x right, y down); the aspect ratio keeps the
    # rotation rigid in pixels for non-square images.
    theta = torch.stack(
        [
            torch.stack([cos, -sin * (h / w), zero], dim=1),
            torch.stack([sin * (w / h), cos, zero], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [b, images.shape[1], h, w], align_corners=False)
    out = F.grid_sample(
        images.to(work_dtype), grid, mode=interpolation, padding_mode="zeros", align_corners=False
    )
    if images.dtype.is_floating_point:
        return out.to(images.dtype)
    info = torch.iinfo(images.dtype)
    return out.round_().clamp_(info.min, info.max).to(images.dtype)


def random_rotation(
    images: torch.Tensor, max_degrees: float, generator: torch.Generator, interpolation: str = "bilinear"
) -> torch.Tensor:
    """Rotate each image by its own angle drawn uniformly from [-d, d]."""
    u = torch.rand(images.shape[0], generator=generator, device=images.device, dtype=torch.float64)
    return rotate_batch(images, (2.0 * u - 1.0) * max_degrees, interpolation)


def augment_batch(images: torch.Tensor, spec: AugmentSpec, generator: torch.Generator) -> torch.Tensor:
    """Crop, flip and rotate a [B, C, H, W] batch (uint8 or float) per image, on its own device.

    The generator must live on the images' device. The identity spec returns ``images`` itself.
    """
    _check_batch(images)
    out = images
    if spec.crop_padding > 0:
        out = random_crop(out, spec.crop_padding, generator)
    if spec.flip:
        out = random_flip(out, generator)
    if spec.rotation_degrees > 0:
        out = random_rotation(out, spec.rotation_degrees, generator, spec.rotation_interpolation)
    return out


def normalize(
    images_uint8: torch.Tensor,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(x / 255 - mean) / std per channel of a uint8 [B, C, H, W] batch, in ``dtype`` on its device."""
    _check_batch(images_uint8)
    if images_uint8.dtype != torch.uint8:
        raise ConfigError("images.dtype", images_uint8.dtype, "torch.uint8 (normalise after augmenting)")
    channels = images_uint8.shape[1]
    mean_t = torch.as_tensor(mean, dtype=torch.float64).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float64).flatten()
    if mean_t.numel() != channels:
        raise ConfigError("data.mean", list(mean_t.tolist()), f"{channels} values, one per channel")
    if std_t.numel() != channels or bool((std_t <= 0).any()):
        raise ConfigError("data.std", list(std_t.tolist()), f"{channels} positive values, one per channel")
    # One fused multiply-add: x * (1 / (255 std)) - mean / std, constants computed in float64.
    scale = (1.0 / (255.0 * std_t)).to(device=images_uint8.device, dtype=dtype).view(1, -1, 1, 1)
    shift = (mean_t / std_t).to(device=images_uint8.device, dtype=dtype).view(1, -1, 1, 1)
    return torch.addcmul(-shift, images_uint8.to(dtype), scale)
