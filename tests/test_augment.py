"""Batch augmentation on the device: crops are windows of the zero-padded image, flips are mirrors,
draws are per image and seeded, rotation agrees with torch.rot90 and torchvision, normalize by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2.functional import rotate as tv_rotate

from aplab.data.augment import (
    AUGMENTATIONS,
    AugmentSpec,
    augment_batch,
    normalize,
    rotate_batch,
)
from aplab.errors import ConfigError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(b: int, c: int = 3, h: int = 8, w: int = 8, seed: int = 123) -> torch.Tensor:
    # values 1..255: no pixel is 0, so a window that reaches into the padding cannot match by chance
    return torch.randint(1, 256, (b, c, h, w), generator=gen(seed), dtype=torch.uint8)


def matching_offsets(out: torch.Tensor, image: torch.Tensor, padding: int) -> list[tuple[int, int]]:
    """All (top, left) whose window of the zero-padded ``image`` equals ``out`` (searched exhaustively)."""
    padded = F.pad(image.float(), (padding, padding, padding, padding), value=0.0)
    h, w = image.shape[-2:]
    return [
        (top, left)
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
        if torch.equal(padded[:, top : top + h, left : left + w], out.float())
    ]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_each_crop_is_a_window_of_the_zero_padded_image(dtype: torch.dtype) -> None:
    images = random_images(32).to(dtype)
    out = augment_batch(images, AugmentSpec(crop_padding=4), gen(1))
    assert out.shape == images.shape and out.dtype == dtype
    offsets = []
    for i in range(len(images)):
        found = matching_offsets(out[i], images[i], 4)  # all 81 offsets
        assert len(found) == 1, f"image {i}: matching offsets {found}"
        offsets.append(found[0])
    # drawn per image: many different offsets in one batch, and some reach into the padding
    assert len(set(offsets)) >= 10
    assert any(o != (4, 4) for o in offsets)


def test_crop_fills_with_zero_before_normalisation() -> None:
    images = torch.full((64, 1, 8, 8), 255, dtype=torch.uint8)
    out = augment_batch(images, AugmentSpec(crop_padding=2), gen(2))
    zeros = (out == 0).flatten(1).sum(1)
    # a window shifted by (dy, dx) keeps (8-|dy|)(8-|dx|) image pixels; the rest is zero padding
    allowed = {64 - (8 - abs(dy)) * (8 - abs(dx)) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert set(zeros.tolist()) <= allowed
    assert set(out.unique().tolist()) <= {0, 255}
    assert (zeros > 0).any()


def test_flip_gives_the_image_or_its_mirror_and_both_occur() -> None:
    images = random_images(64, w=9)
    out = augment_batch(images, AugmentSpec(flip=True), gen(3))
    same = [torch.equal(o, x) for o, x in zip(out, images)]
    mirrored = [torch.equal(o, x.flip(-1)) for o, x in zip(out, images)]
    assert all(s != m for s, m in zip(same, mirrored))  # exactly one of the two, never something else
    assert 10 <= sum(mirrored) <= 54  # p = 0.5 per image, so both occur


def test_same_seed_same_batch_and_other_seed_other_batch() -> None:
    images = random_images(16, h=12, w=12)
    spec = AUGMENTATIONS.get("crop_flip_rotate")
    a = augment_batch(images, spec, gen(7))
    b = augment_batch(images, spec, gen(7))
    c = augment_batch(images, spec, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_identity_spec_returns_the_input_unchanged() -> None:
    images = random_images(4)
    for spec in (AugmentSpec(), AugmentSpec(crop_padding=0, flip=False, rotation_degrees=0), AUGMENTATIONS.get("none")):
        assert spec.is_identity
        assert torch.equal(augment_batch(images, spec, gen()), images)
    assert not AugmentSpec(flip=True).is_identity


def test_rotation_by_zero_is_identity() -> None:
    images = random_images(4, h=10, w=14)
    assert torch.equal(rotate_batch(images, torch.zeros(4)), images)
    floats = images.float() / 255
    assert torch.allclose(rotate_batch(floats, torch.zeros(4)), floats, atol=1e-6)


def test_rotation_by_90_is_counter_clockwise_rot90() -> None:
    images = random_images(3, h=9, w=9).float()
    expected = torch.rot90(images, k=1, dims=(-2, -1))  # torchvision's rotate(90) uses the same
    assert torch.allclose(rotate_batch(images, torch.full((3,), 90.0)), expected, atol=1e-4)
    assert torch.allclose(rotate_batch(images, torch.full((3,), -90.0)), torch.rot90(images, k=-1, dims=(-2, -1)),
                          atol=1e-4)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_per_image_angles_match_torchvision_rotate(mode: str) -> None:
    images = torch.rand(3, 2, 12, 20, generator=gen(4))  # non-square on purpose
    angles = [17.0, -33.0, 5.5]
    out = rotate_batch(images, torch.tensor(angles), mode)
    interp = InterpolationMode.BILINEAR if mode == "bilinear" else InterpolationMode.NEAREST
    for i, angle in enumerate(angles):
        expected = tv_rotate(images[i], angle, interpolation=interp)  # zero fill (fill=None)
        assert torch.allclose(out[i], expected, atol=1e-5)


def test_random_rotation_keeps_shape_and_dtype_and_differs_per_image() -> None:
    spec = AugmentSpec(rotation_degrees=20)
    one = random_images(1, h=16, w=16)
    images = one.expand(8, -1, -1, -1).contiguous()  # eight copies of the same image
    for x in (images, images.float()):
        out = augment_batch(x, spec, gen(5))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert len({tuple(o.flatten().tolist()) for o in out}) == 8  # eight different angles
        assert not torch.equal(out[0], x[0])


def test_registered_augmentations() -> None:
    assert AUGMENTATIONS.names() == ["crop_flip", "crop_flip_rotate", "none"]
    assert AUGMENTATIONS.get("crop_flip") == AugmentSpec(crop_padding=4, flip=True)
    assert AUGMENTATIONS.get("crop_flip_rotate") == AugmentSpec(crop_padding=4, flip=True, rotation_degrees=20,
                                                               rotation_interpolation="nearest")
    with pytest.raises(ConfigError, match="did you mean 'crop_flip'"):
        AUGMENTATIONS.get("crop_flp", field="data.augment")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"crop_padding": -1}, "augment.crop_padding"), ({"crop_padding": 1.5}, "augment.crop_padding"),
     ({"rotation_degrees": -3}, "augment.rotation_degrees"), ({"flip": 1}, "augment.flip"),
     ({"rotation_interpolation": "cubic"}, "augment.rotation_interpolation")],
)
def test_bad_spec_is_a_config_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        AugmentSpec(**kwargs)
    assert err.value.field == field


def test_augment_rejects_non_batch_input() -> None:
    with pytest.raises(ConfigError):
        augment_batch(torch.zeros(3, 8, 8, dtype=torch.uint8), AugmentSpec(flip=True), gen())


def test_normalize_matches_hand_computation() -> None:
    images = torch.tensor([[[[0, 255], [128, 51]], [[10, 20], [30, 40]]]], dtype=torch.uint8)  # [1, 2, 2, 2]
    mean, std = (0.5, 0.25), (0.5, 0.2)
    expected = torch.tensor(
        [[[[(0 / 255 - 0.5) / 0.5, (255 / 255 - 0.5) / 0.5], [(128 / 255 - 0.5) / 0.5, (51 / 255 - 0.5) / 0.5]],
          [[(10 / 255 - 0.25) / 0.2, (20 / 255 - 0.25) / 0.2], [(30 / 255 - 0.25) / 0.2, (40 / 255 - 0.25) / 0.2]]]],
        dtype=torch.float64,
    )
    out = normalize(images, mean, std)
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert torch.allclose(out.double(), expected, atol=1e-6)
    assert out[0, 0, 0, 0].item() == pytest.approx(-1.0) and out[0, 0, 0, 1].item() == pytest.approx(1.0)
    out64 = normalize(images, torch.tensor(mean), torch.tensor(std), dtype=torch.float64)
    assert torch.allclose(out64, expected, atol=1e-12)
    assert normalize(images, mean, std, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_normalize_rejects_bad_input() -> None:
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ConfigError) as err:
        normalize(images, (0.5,), (0.5,))  # one value for three channels
    assert err.value.field == "data.mean"
    with pytest.raises(ConfigError) as err:
        normalize(images, (0.5,) * 3, (0.5, 0.0, 0.5))
    assert err.value.field == "data.std"
    with pytest.raises(ConfigError) as err:
        normalize(images.float(), (0.5,) * 3, (0.5,) * 3)  # already float: would be scaled twice
    assert err.value.field == "images.dtype"
