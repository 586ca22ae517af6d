"""Images per second of the WebVision input path: CPU decode (PIL in DataLoader workers) vs device decode.

Writes generated JPEGs (short side 224-320 px, aspect 3:4 to 4:3, quality 90) into a temporary folder and
times one epoch of each path after a warm-up epoch (workers started, caches warm), for the training
transform (random resized crop, flip, colour jitter) and the evaluation one (resize, centre crop):

- cpu: ``files.file_loader`` + ``files.iterate`` (``runtime.decode=cpu``), workers decode and transform;
- device: ``gpu_decode.DeviceDecodedFiles`` (``runtime.decode=gpu``), workers read bytes and the main process
  decodes with ``decode_jpeg`` and transforms the batch on the device. Without CUDA the device is the CPU:
  the main process then decodes and transforms on the CPU itself, which measures the code, not nvJPEG.

    python benchmarks/bench_decode.py [--images 512] [--batch-size 64] [--workers 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs_per_gpu import machine  # noqa: E402  (the machine line every benchmark here prints)

from aplab.data.files import evaluation_transform, file_loader, iterate, webvision_train  # noqa: E402
from aplab.data.device_transforms import EvaluationOnDevice, WebVisionTrainOnDevice  # noqa: E402
from aplab.data.gpu_decode import DeviceDecodedFiles  # noqa: E402
from aplab.data.sources.webvision_mini import IMAGENET_STATS  # noqa: E402

SIZE = 224


def write_jpegs(folder: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` photo-like JPEGs (smooth colour fields plus noise) of WebVision-like sizes."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        short = int(rng.integers(224, 321))
        long = int(short * rng.uniform(1.0, 4 / 3))
        h, w = (short, long) if i % 2 else (long, short)
        yy, xx = np.mgrid[0:h, 0:w]
        phase = rng.uniform(0, 6.3, size=3)
        img = np.stack([np.sin(xx / 19 + phase[0]), np.cos(yy / 23 + phase[1]), np.sin((xx + yy) / 31 + phase[2])], -1)
        img = np.clip(img * 100 + 128 + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(str(path))
    return paths


def images_per_second(batches, device: torch.device) -> float:
    """One warm-up epoch, then the images per second of the next, the last batch waited for on the device."""
    for _ in batches:
        pass
    start = time.perf_counter()
    count = 0
    for images, _ in batches:
        count += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - start)


class CpuPath:
    """runtime.decode=cpu as FileBatches runs it: an epoch is one pass of ``iterate`` over the loader."""

    def __init__(self, paths: list[str], transform, batch_size: int, shuffle: bool, device: torch.device,
                 workers: int):
        self.loader = file_loader(paths, np.arange(len(paths)), transform, batch_size, shuffle, seed=0, workers=workers)
        self.device = device

    def __iter__(self):
        return iterate(self.loader, self.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mean, std = IMAGENET_STATS
    print(f"machine: {machine()}")
    print(f"{args.images} generated JPEGs, batch {args.batch_size}, {args.workers} DataLoader workers, "
          f"decode device {device}" + ("" if device.type == "cuda" else " (no CUDA: device decode runs on the CPU "
                                                                         "in the main process)"))
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as folder:
        paths = write_jpegs(Path(folder), args.images)
        cases = {
            "train": (webvision_train(SIZE, mean, std), WebVisionTrainOnDevice(SIZE, mean, std), True),
            "eval": (evaluation_transform(SIZE, mean, std), EvaluationOnDevice(SIZE, mean, std), False),
        }
        print(f"{'transform':>9} {'cpu decode img/s':>17} {'device decode img/s':>20} {'ratio':>6}")
        for name, (cpu_transform, device_transform, shuffle) in cases.items():
            cpu = images_per_second(CpuPath(paths, cpu_transform, args.batch_size, shuffle, device, args.workers),
                                    device)
            on_device = images_per_second(
                DeviceDecodedFiles(paths, np.arange(len(paths)), device_transform, args.batch_size, shuffle, device,
                                   workers=args.workers), device)
            print(f"{name:>9} {cpu:>17.0f} {on_device:>20.0f} {on_device / cpu:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
