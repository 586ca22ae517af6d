"""Stacked training against solo runs and parallel solo processes: runs per hour and peak memory against K.

For each model and image size, K members train side by side three ways, measured in one invocation:
  stacked  one process, the K members as one fused model (``aplab.train.stack_engine.train_stack``);
  solo     one process, the K members one after the other (the same per-member work, unfused);
  procs    K processes at once, each training one member (what ``--runs-per-gpu K`` does).
Every step is the engine's: the member's own loss (CE), backward, clipping at 5 and SGD, on random uint8
images normalised per batch. Runs per hour = member steps per second x 3600 / steps of the protocol's run
(digits 60 epochs x 9 steps; MNIST 50 x 375; CIFAR-10 120 x 313). Peak memory: the CUDA allocator's peak,
or on a CPU the process's peak resident set (each measurement in a fresh process).

    python benchmarks/bench_stack.py                      # CPU: the sizes that finish in minutes here
    python benchmarks/bench_stack.py --device cuda --ks 1 2 4 8 16 32
    python benchmarks/bench_stack.py --dry-run            # one tiny step of everything: the script works
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from dataclasses import dataclass

#: (name, model, image size, channels, steps of one run of its protocol)
CASES = {
    "cnn4-8px": ("cnn4", 8, 1, 60 * 9),  # the quickstart: digits, 60 epochs of 9 batches
    "cnn4-28px": ("cnn4", 28, 1, 50 * 375),  # the MNIST column: 50 epochs of 48,000 / 128
    "cnn8-32px": ("cnn8", 32, 3, 120 * 313),  # the CIFAR-10 column: 120 epochs of 40,000 / 128
}


@dataclass
class Measure:
    case: str
    mode: str
    k: int
    member_steps_per_s: float
    runs_per_hour: float
    peak_mib: float


def build_members(model: str, size: int, channels: int, k: int, device: str, batches: int, batch: int):
    """K engines (model, CE, SGD, cosine) and K batch sources of random images, as a run builds them."""
    import torch

    from aplab import losses
    from aplab.models import build_model, float32_head
    from aplab.train.batches import DeviceBatches
    from aplab.train.engine import Engine
    from aplab.train.runtime import Runtime

    runtime = Runtime(torch.device(device), "bf16" if device == "cuda" else "fp32", device == "cuda")
    engines, trains = [], []
    for seed in range(k):
        torch.manual_seed(seed)
        net = float32_head(build_model(model, 10, channels, size)).to(runtime.device)
        if runtime.channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
        engines.append(Engine(net, losses.build("ce", 10), optimizer, scheduler, runtime, 5.0, 10))
        n = batches * batch
        images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8)
        labels = torch.randint(0, 10, (n,))
        train = DeviceBatches(images, labels, labels, torch.zeros(n, dtype=torch.bool), (0.5,) * channels,
                              (0.25,) * channels, batch, runtime.device, shuffle=True,
                              channels_last=runtime.channels_last)
        train.seed(seed)
        trains.append(train)
    return runtime, engines, trains


def timed(fn, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_mib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_in_process(case: str, mode: str, k: int, device: str, batches: int, batch: int, threads: int,
                       out) -> None:
    """One measurement (stacked or solo) in this fresh process: a warm-up epoch, then a timed one."""
    import torch

    from aplab.train.stack_engine import train_stack

    torch.set_num_threads(threads)
    model, size, channels, steps = CASES[case]
    runtime, engines, trains = build_members(model, size, channels, k, device, batches, batch)

    def epoch():
        if mode == "stacked":
            sums = train_stack(engines, trains, runtime)
        else:
            sums = [engine.train_epoch(train) for engine, train in zip(engines, trains)]
        float(sum(s[0] for s in sums))  # the epoch's one host sync

    epoch()  # warm-up: allocator, kernels
    seconds = timed(epoch, device)
    rate = k * batches / seconds
    out.put(Measure(case, mode, k, rate, rate * 3600 / steps, peak_mib(device)).__dict__)


def measure_procs(case: str, k: int, device: str, batches: int, batch: int, cores: int) -> dict:
    """K processes at once, each one solo member (threads shared out): the --runs-per-gpu way."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    threads = max(1, cores // k)
    workers = [context.Process(target=measure_in_process, args=(case, "solo", 1, device, batches, batch, threads, out))
               for _ in range(k)]
    for w in workers:
        w.start()
    results = [out.get() for _ in workers]
    for w in workers:
        w.join()
    rate = sum(r["member_steps_per_s"] for r in results)  # they ran at the same time (same work each)
    steps = CASES[case][3]
    return Measure(case, "procs", k, rate, rate * 3600 / steps, sum(r["peak_mib"] for r in results)).__dict__


def measure(case: str, mode: str, k: int, device: str, batches: int, batch: int, cores: int) -> dict:
    if mode == "procs":
        return measure_procs(case, k, device, batches, batch, cores)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    worker = context.Process(target=measure_in_process, args=(case, mode, k, device, batches, batch, cores, out))
    worker.start()
    result = out.get()
    worker.join()
    return result


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--modes", nargs="+", default=["stacked", "solo", "procs"])
    parser.add_argument("--batches", type=int, default=6, help="training steps per member per timed epoch")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="skip larger K of a case once one measurement took longer than this")
    parser.add_argument("--json", help="also write the measurements here")
    parser.add_argument("--dry-run", action="store_true", help="K in {1, 2}, one step: check that everything runs")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.ks, args.batches = [1, 2], 1
    cores = len(os.sched_getaffinity(0))
    rows = []
    print(f"device {args.device}, {cores} cores, batch {args.batch}, {args.batches} steps per member timed")
    print(f"{'case':<10} {'mode':<8} {'K':>3} {'member steps/s':>15} {'runs/hour':>10} {'peak MiB':>9}")
    for case in args.cases:
        too_slow = set()
        for k in args.ks:
            for mode in args.modes:
                if mode in too_slow:
                    continue
                start = time.perf_counter()
                row = measure(case, mode, k, args.device, args.batches, args.batch, cores)
                rows.append(row)
                print(f"{case:<10} {mode:<8} {k:>3} {row['member_steps_per_s']:>15.2f} {row['runs_per_hour']:>10.2f} "
                      f"{row['peak_mib']:>9.0f}", flush=True)
                if time.perf_counter() - start > args.max_seconds:
                    too_slow.add(mode)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
