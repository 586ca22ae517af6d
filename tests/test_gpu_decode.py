"""The WebVision input path with decoding on the device (runtime.decode=gpu), run here with device="cpu":
real JPEGs written by PIL, decoded by torchvision, transformed in batches like the PIL path in workers."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.io import read_file
from torchvision.transforms import RandomResizedCrop

from aplab.data.files import FILE_TRANSFORMS, evaluation_transform
from aplab.data.device_transforms import (
    DEVICE_FILE_TRANSFORMS,
    ColorJitterDraws,
    EvaluationOnDevice,
    WebVisionTrainOnDevice,
    color_jitter,
    random_resized_boxes,
)
from aplab.data.gpu_decode import DeviceDecodedFiles, check_decode, decode_images
from aplab.distributed import Rank
from aplab.errors import ConfigError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CPU = torch.device("cpu")
SIZES = [(250, 300), (300, 240), (224, 224), (400, 180), (97, 130), (256, 341)]


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour image with some noise: JPEG-like content, not flat."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([np.sin(xx / 17 + seed) * 120 + 128, np.cos(yy / 23) * 120 + 128, (xx + yy) % 256], axis=-1)
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("jpegs")
    paths = []
    for i, (h, w) in enumerate(SIZES):
        path = folder / f"{i}.jpg"
        Image.fromarray(photo(h, w, i)).save(path, quality=90)
        paths.append(str(path))
    return paths


def pil_rgb(path: str) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def test_decode_gives_uint8_rgb_images_equal_to_pil_within_two_levels(jpegs, tmp_path):
    gray = tmp_path / "gray.jpg"
    Image.fromarray(photo(60, 80, 9)[..., 0]).save(gray, quality=90)
    png = tmp_path / "lossless.png"
    Image.fromarray(photo(50, 70, 10)).save(png)
    paths = [*jpegs, str(gray), str(png)]
    images = decode_images([read_file(p) for p in paths], CPU)
    assert len(images) == len(paths)
    for path, image in zip(paths, images):
        reference = pil_rgb(path)
        assert image.dtype == torch.uint8 and image.device == CPU
        assert image.shape == reference.shape  # [3, H, W], the grayscale JPEG as three channels
        assert (image.int() - reference.int()).abs().max() <= 2
    assert torch.equal(images[-1], pil_rgb(str(png)))  # the PNG takes the decode_image fallback, lossless


def test_evaluation_on_device_matches_the_pil_path_within_one_level(jpegs):
    reference = torch.stack([evaluation_transform(224, MEAN, STD)(Image.open(p).convert("RGB")) for p in jpegs])
    images = decode_images([read_file(p) for p in jpegs], CPU)
    batch = EvaluationOnDevice(224, MEAN, STD)(images, torch.Generator())
    assert batch.shape == (len(jpegs), 3, 224, 224) and batch.dtype == torch.float32
    levels = (batch - reference).abs() * torch.tensor(STD).view(1, 3, 1, 1) * 255  # back to 0..255 units
    assert levels.max() <= 1.01  # antialiased bilinear: torchvision's tensor kernel vs PIL's filter
    assert levels.mean() < 0.05


def test_train_batches_are_seeded_normalised_and_of_the_model_size(jpegs):
    images = decode_images([read_file(p) for p in jpegs], CPU)
    transform = DEVICE_FILE_TRANSFORMS.get("webvision")(224, MEAN, STD)
    first = transform(images, torch.Generator().manual_seed(7))
    again = transform(images, torch.Generator().manual_seed(7))
    other = transform(images, torch.Generator().manual_seed(8))
    assert first.shape == (len(jpegs), 3, 224, 224) and first.dtype == torch.float32
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    low = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    high = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert (first >= low.view(1, 3, 1, 1) - 1e-5).all() and (first <= high.view(1, 3, 1, 1) + 1e-5).all()


def test_without_jitter_a_full_crop_is_the_pil_resize_of_the_image_or_its_mirror(jpegs):
    # scale 1 and a ratio range holding every image's aspect: the crop box is the whole image
    transform = WebVisionTrainOnDevice(112, MEAN, STD, scale=(1.0, 1.0), ratio=(0.2, 5.0), jitter=(0, 0, 0, 0))
    images = decode_images([read_file(p) for p in jpegs], CPU)
    batch = transform(images, torch.Generator().manual_seed(0))
    from torchvision import transforms

    resize = transforms.Compose([transforms.Resize((112, 112)), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    scale = torch.tensor(STD).view(3, 1, 1) * 255
    for path, out in zip(jpegs, batch):
        reference = resize(Image.open(path).convert("RGB"))
        as_is = ((out - reference).abs() * scale).max()
        mirrored = ((out - reference.flip(-1)).abs() * scale).max()
        assert min(as_is, mirrored) <= 1.01


def test_crop_boxes_follow_random_resized_crop_bounds_and_its_fallback():
    sizes = [(250, 300), (97, 130), (500, 375)] * 200
    boxes = random_resized_boxes(sizes, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(1))
    for (height, width), (top, left, h, w) in zip(sizes, boxes):
        assert 0 <= top <= height - h and 0 <= left <= width - w
        assert 0.08 * height * width * 0.9 <= h * w <= height * width  # rounding of h and w moves the area a bit
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1
    # 10 x 1000 fits no draw: torchvision's centre fallback, which is deterministic
    strip = torch.zeros(3, 10, 1000)
    expected = RandomResizedCrop.get_params(strip, [0.08, 1.0], [3 / 4, 4 / 3])
    assert random_resized_boxes([(10, 1000)], (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator()) == [expected]


def test_batched_color_jitter_equals_torchvision_per_image_in_each_images_order():
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(6, 3, 16, 16, generator=generator)
    x[0, :, :4, :4] = 0.5  # grey pixels: hue undefined, left unchanged
    order = torch.stack([torch.randperm(4, generator=generator) for _ in range(6)])
    factors = torch.stack([torch.tensor([0.6, 1.4, 0.7, -0.2]), torch.tensor([1.3, 0.65, 1.35, 0.15])] * 3).double()
    out = color_jitter(x, ColorJitterDraws(order, factors))
    steps = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(6):
        expected = x[i]
        for step in order[i].tolist():
            expected = steps[step](expected, float(factors[i, step]))
        torch.testing.assert_close(out[i], expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("workers", [0, 1])  # 1: the bytes cross from a (persistent) worker process
def test_an_epoch_holds_each_file_once_and_depends_only_on_its_seed(jpegs, workers):
    def loader() -> DeviceDecodedFiles:
        return DeviceDecodedFiles(jpegs, np.arange(len(jpegs)), WebVisionTrainOnDevice(32, MEAN, STD), batch_size=2,
                                  shuffle=True, device=CPU, workers=workers)

    def epoch(files: DeviceDecodedFiles, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        files.generator.manual_seed(seed)
        batches = list(files)
        return torch.cat([b for b, _ in batches]), torch.cat([i for _, i in batches])

    files = loader()
    images, index = epoch(files, 5)
    other_images, other_index = epoch(files, 6)
    again_images, again_index = epoch(files, 5)  # a later epoch with the first one's seed
    fresh_images, fresh_index = epoch(loader(), 5)  # a new loader, as after a resume
    assert sorted(index.tolist()) == list(range(len(jpegs)))  # 6 files, batches of 2: none dropped
    assert images.shape == (len(jpegs), 3, 32, 32)
    assert torch.equal(index, again_index) and torch.equal(images, again_images)
    assert torch.equal(index, fresh_index) and torch.equal(images, fresh_images)
    assert not torch.equal(images, other_images)


def drawn(images, generator: torch.Generator) -> torch.Tensor:
    """A device transform that keeps only its draw per image (the stand-in for crops, flips and jitter)."""
    return torch.rand(len(images), 1, generator=generator)


def test_each_rank_draws_its_own_augmentations_and_the_same_again_from_the_same_state(jpegs):
    def draws(rank: int) -> torch.Tensor:
        files = DeviceDecodedFiles(jpegs, np.arange(len(jpegs)), drawn, batch_size=4, shuffle=True, device=CPU,
                                   seed=5, workers=0, rank=Rank(rank, 2))
        return torch.cat([images for images, _ in files])

    first, second = draws(0), draws(1)
    assert first.shape == second.shape == (2, 1)  # 6 files: one global batch of 4, 2 per rank
    assert not torch.isclose(first, second).any()  # the ranks share the generator's state, not its draws
    assert torch.equal(draws(1), second)


def test_reading_workers_ignore_slurms_requeue_signal(jpegs):
    files = DeviceDecodedFiles(jpegs, np.arange(len(jpegs)), drawn, batch_size=2, shuffle=True, device=CPU, workers=1)
    before = signal.getsignal(signal.SIGUSR2)
    try:
        files.loader.worker_init_fn(0)  # what each worker runs first
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_every_file_augmentation_has_a_device_twin():
    assert DEVICE_FILE_TRANSFORMS.names() == FILE_TRANSFORMS.names()


def test_gpu_decode_without_cuda_is_one_config_error_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as info:
        check_decode("gpu", torch.device("cpu"))
    message = str(info.value)
    assert "\n" not in message and message.startswith("runtime.decode='gpu'") and "no CUDA device" in message
    check_decode("cpu", torch.device("cpu"))  # the default never needs CUDA


def test_gpu_decode_with_a_cpu_run_device_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match="runtime.device is cpu"):
        check_decode("gpu", torch.device("cpu"))
