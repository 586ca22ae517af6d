"""cnn4 at 28 px on the CPU: aplab's training loop against a plain PyTorch loop, and where an epoch's time goes.

Both train cnn4 with cross-entropy, batch 128, SGD (Nesterov, weight decay 1e-2) and clipping at 5, on
Fashion-MNIST's real images when Debian's package is installed (else random ones of the same shape).
The plain loop holds the images normalised in float32 and slices batches from them; aplab's is
``DeviceBatches`` (uint8 held, normalised per batch) with ``Engine.train_epoch`` (one sync per epoch).
Then variants of the plain loop (threads, channels_last, bf16 autocast) and a profile of its steps.

    python benchmarks/bench_cnn28.py --images 6000 --threads 1 2 --profile
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from aplab import losses
from aplab.models import build_model
from aplab.train.batches import DeviceBatches
from aplab.train.engine import Engine
from aplab.train.runtime import Runtime

MEAN, STD = (0.2860,), (0.3530,)


def data(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        from aplab.data.sources import load_dataset

        ds = load_dataset("fashion_mnist", "/nonexistent-aplab-data", download=False)
        return ds.train.images[:n].contiguous(), torch.from_numpy(ds.train.labels[:n]), "Fashion-MNIST (real)"
    except Exception:  # noqa: BLE001 - the package is absent: random images of the same shape
        g = torch.Generator().manual_seed(0)
        return (torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                torch.randint(0, 10, (n,), generator=g), "random 28x28")


def parts():
    torch.manual_seed(0)
    model = build_model("cnn4", 10, 1, 28)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-2)
    return model, opt


def plain_epoch(model, opt, x, y, channels_last=False, bf16=False, batch=128) -> int:
    model.train()
    order = torch.randperm(len(y))
    for start in range(0, len(y), batch):
        idx = order[start:start + batch]
        xb = x[idx]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(xb)
        loss = torch.nn.functional.cross_entropy(logits.float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    return len(y)


def rate(fn, repeats: int) -> float:
    fn()  # warm-up epoch
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return float(np.median(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs (median) after a warm-up epoch")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--profile", action="store_true", help="top operators of 10 plain steps")
    args = parser.parse_args()
    images, labels, source = data(args.images)
    x = (images.float() / 255 - MEAN[0]) / STD[0]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"machine: {cpu}, {torch.get_num_threads()} threads by default; torch {torch.__version__}; "
          f"{args.images} images of {source}, cnn4, batch 128, img/s median of {args.repeats} epochs")
    print("| threads | plain loop fp32 | aplab engine fp32 | aplab / plain | plain channels_last | plain bf16 |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        model, opt = parts()
        plain = rate(lambda: plain_epoch(model, opt, x, labels), args.repeats)  # noqa: B023
        model, opt = parts()
        cl = rate(lambda: plain_epoch(model, opt, x, labels, channels_last=True), args.repeats)  # noqa: B023
        model, opt = parts()
        bf = rate(lambda: plain_epoch(model, opt, x, labels, bf16=True), args.repeats)  # noqa: B023
        model, opt = parts()
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=1e-3)
        engine = Engine(model, losses.build("ce", 10), opt, sched, Runtime(torch.device("cpu"), "fp32", False), 5.0, 10)
        batches = DeviceBatches(images, labels, labels, torch.zeros_like(labels, dtype=torch.bool), MEAN, STD, 128,
                                torch.device("cpu"), shuffle=True)
        ours = rate(lambda: int(engine.train_epoch(batches)[5].item()), args.repeats)  # noqa: B023
        print(f"| {threads} | {plain:,.0f} | {ours:,.0f} | {ours / plain:.2f} | {cl:,.0f} | {bf:,.0f} |", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        model, opt = parts()
        plain_epoch(model, opt, x[:1280], labels[:1280])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            plain_epoch(model, opt, x[:1280], labels[:1280])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
