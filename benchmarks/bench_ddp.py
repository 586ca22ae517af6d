"""Training images/s of one run on 1 process vs N processes (DistributedDataParallel), through aplab's engine.

Each configuration trains ``--steps`` timed steps (after ``--warmup``) of a global batch of ``--batch``
images, split across the ranks as a run does (``DeviceBatches`` slices, loss scaled to the global mean,
SyncBatchNorm on GPUs). One process runs without DDP, as a plain run does. N processes start through
PyTorch's elastic launcher, gloo on CPU (threads split between ranks), NCCL on GPUs (one per rank).

    python benchmarks/bench_ddp.py                       # resnet50 at 224 px, resnet34 at 32 px; 1 vs all GPUs
    python benchmarks/bench_ddp.py --nproc 1 2 --batch 16 --steps 3   # a CPU machine
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import torch

from aplab import losses
from aplab.distributed import SINGLE, rank_from_environment
from aplab.models import build_model, float32_head
from aplab.train.batches import DeviceBatches
from aplab.train.engine import Engine
from aplab.train.runtime import Runtime

NUM_CLASSES = 50  # WebVision-mini's


def measure(model_name: str, size: int, batch: int, steps: int, warmup: int, device_type: str) -> float:
    """Images/s of ``steps`` training steps on this process's rank (SINGLE when not launched); rank 0's value."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    rank = rank_from_environment() or SINGLE
    device = torch.device("cuda", rank.local_rank) if device_type == "cuda" else torch.device("cpu")
    if rank.distributed:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // rank.world_size))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    precision = "bf16" if device.type == "cuda" else "fp32"
    runtime = Runtime(device, precision, channels_last=device.type == "cuda")
    torch.manual_seed(0)
    model = float32_head(build_model(model_name, NUM_CLASSES, 3, size)).to(device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainer = None
    if rank.distributed:
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        trainer = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                          gradient_as_bucket_view=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    engine = Engine(model, losses.build("nce+rce", NUM_CLASSES), optimizer, scheduler, runtime, 5.0, NUM_CLASSES,
                    trainer=trainer, rank=rank)

    def batches(count: int) -> DeviceBatches:
        images = torch.randint(0, 256, (batch * count, 3, size, size), dtype=torch.uint8)
        labels = torch.randint(0, NUM_CLASSES, (batch * count,))
        made = DeviceBatches(images, labels, labels, torch.zeros_like(labels, dtype=torch.bool), (0.5,) * 3,
                             (0.25,) * 3, batch, device, shuffle=True, channels_last=runtime.channels_last, rank=rank)
        made.seed(0)
        return made

    engine.train_epoch(batches(warmup))  # cuDNN autotuning, DDP buckets, the allocator
    timed = batches(steps)
    if rank.distributed:
        dist.barrier()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    count = engine.train_epoch(timed)
    if rank.distributed:
        dist.all_reduce(count)
    seen = float(count[5])  # the host sync that ends the timed steps (every rank's images)
    seconds = time.perf_counter() - start
    if rank.distributed:
        dist.destroy_process_group()
    return seen / seconds


def on_ranks(nproc: int, *args) -> float:
    """``measure`` on ``nproc`` local ranks started by the elastic launcher; rank 0's images/s."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"bench-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn")
    return elastic_launch(config, measure)(*args)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50:224", "resnet34:32"], help="model:image size")
    on_gpu = torch.cuda.is_available()
    parser.add_argument("--nproc", type=int, nargs="+",
                        default=sorted({1, torch.cuda.device_count()}) if on_gpu else [1, 2])
    parser.add_argument("--batch", type=int, default=256 if on_gpu else 16, help="global batch")
    parser.add_argument("--steps", type=int, default=20 if on_gpu else 3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5 if on_gpu else 1)
    args = parser.parse_args()
    device_type = "cuda" if on_gpu else "cpu"
    if on_gpu:
        machine = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        machine = f"CPU, {os.cpu_count()} cores"
    print(f"machine: {machine}; torch {torch.__version__}; global batch {args.batch}, {args.steps} timed steps "
          f"after {args.warmup}; loss nce+rce, {'bf16, channels_last, NCCL' if on_gpu else 'fp32, gloo'}")
    print("| model | image px | processes | images/s | vs 1 process |")
    print("|---|---:|---:|---:|---:|")
    for spec in args.models:
        name, size = spec.split(":")
        base = None
        for nproc in args.nproc:
            task = (name, int(size), args.batch, args.steps, args.warmup, device_type)
            rate = measure(*task) if nproc == 1 else on_ranks(nproc, *task)
            base = base or rate
            print(f"| {name} | {size} | {nproc} | {rate:,.1f} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
