"""Training throughput of aplab's engine against a plain reference loop, on CIFAR-shaped data.

Reference loop: torch DataLoader over PIL images with per-sample torchvision transforms (RandomCrop 32
pad 4, flip, ToTensor, Normalize), the same model, loss and optimizer. aplab: uint8 images held on the
device, augmented per batch there (``DeviceBatches``), one host sync per epoch (``Engine``).

    python benchmarks/bench_train.py --model cnn8 --images 10000 --precision fp32 bf16
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from aplab import losses
from aplab.data import AUGMENTATIONS
from aplab.models import build_model
from aplab.train.batches import DeviceBatches
from aplab.train.engine import Engine
from aplab.train.runtime import Runtime

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class PilImages(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def make_parts(model_name, num_classes, device, precision, channels_last):
    torch.manual_seed(0)
    model = build_model(model_name, num_classes, 3, 32).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = losses.build("nce+rce", num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    return model, loss_fn, optimizer


def reference_epoch(model, loss_fn, optimizer, loader, device, precision):
    model.train()
    seen = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        seen += y.numel()
        loss.item()  # the reference scripts read the loss every step (a host sync)
    return seen


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    n = fn()
    sync()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn8")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, args.classes, size=args.images)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    print(f"machine: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"{args.images} images of 32x32x3, model {args.model}, loss nce+rce, batch 128")
    print("| precision | reference loop (img/s) | aplab engine (img/s) | speed-up |")
    print("|---|---|---|---|")
    results = {}
    for precision in args.precision:
        channels_last = device.type == "cuda"
        loader = DataLoader(PilImages(images, labels), batch_size=128, shuffle=True, num_workers=args.workers,
                            persistent_workers=args.workers > 0)
        model, loss_fn, optimizer = make_parts(args.model, args.classes, device, precision, channels_last)
        run_ref = lambda: reference_epoch(model, loss_fn, optimizer, loader, device, precision)  # noqa: E731
        run_ref()
        ref = np.median([timed(run_ref, sync) for _ in range(args.epochs)])

        model, loss_fn, optimizer = make_parts(args.model, args.classes, device, precision, channels_last)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
        engine = Engine(model, loss_fn, optimizer, scheduler, Runtime(device, precision, channels_last), 5.0, args.classes)
        tensor_images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(labels)
        batches = DeviceBatches(tensor_images, y, y, torch.zeros_like(y, dtype=torch.bool), MEAN, STD, 128, device,
                                augment=AUGMENTATIONS.get("crop_flip"), shuffle=True, channels_last=channels_last)
        run_ours = lambda: int(engine.train_epoch(batches)[5].item())  # noqa: E731
        run_ours()
        ours = np.median([timed(run_ours, sync) for _ in range(args.epochs)])
        results[precision] = (ref, ours)
        print(f"| {precision} | {ref:,.0f} | {ours:,.0f} | {ours / ref:.2f}x |", flush=True)
    if "fp32" in results and "bf16" in results:
        print(f"aplab bf16 vs reference fp32: {results['bf16'][1] / results['fp32'][0]:.2f}x")


if __name__ == "__main__":
    main()
