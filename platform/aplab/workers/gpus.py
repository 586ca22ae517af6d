"""``--gpus``/``--runs-per-gpu``: which GPU each worker process sees, decided before CUDA initialises.

A worker is given its GPU through CUDA_VISIBLE_DEVICES, set in the spawned worker before any
``torch.cuda`` call, so its run sees the GPU as ``cuda:0``. ``assign_gpus`` is the pure rule;
``gpu_plan`` checks the request against the GPUs this machine shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError
from ..tracking import require_shared_store

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
GPUS_HELP = ("GPUs for the worker processes: auto (every visible GPU; CPU workers when there is none), "
             "none (CPU workers), or a list of visible GPU indices such as 0,1,3")


@dataclass(frozen=True)
class GpuRequest:
    """What ``--gpus`` asked for: every visible GPU (``auto``), none, or these visible indices."""

    auto: bool = False
    indices: tuple[int, ...] = ()


def parse_gpus(text: str) -> GpuRequest:
    """``auto``, ``none`` or a comma-separated list of distinct non-negative integers."""
    value = text.strip().lower()
    if value == "auto":
        return GpuRequest(auto=True)
    if value == "none":
        return GpuRequest()
    parts = [p.strip() for p in value.split(",")]
    if not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise ConfigError("--gpus", text, "auto, none, or distinct GPU indices such as 0,1,3")
    return GpuRequest(indices=tuple(int(p) for p in parts))


def visible_devices() -> list[str]:
    """The physical ids of the GPUs this process may use, in CUDA's order (visible index -> physical id).

    Honours a CUDA_VISIBLE_DEVICES already set; otherwise counts with ``torch.cuda.device_count()``,
    which initialises the CUDA driver in this process only: workers are spawned, never forked, and a
    process that hands out GPUs never trains on one itself.
    """
    listed = os.environ.get(CUDA_VISIBLE_DEVICES)
    if listed is not None:
        return [p.strip() for p in listed.split(",") if p.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def assign_gpus(devices: list[str], runs_per_gpu: int, workers: int) -> list[str]:
    """Each worker's CUDA_VISIBLE_DEVICES: workers take the GPUs in turn, K runs per GPU at most at once.

    ``devices`` are the physical ids of the chosen GPUs; worker ``i`` gets ``devices[i % len(devices)]``.
    More workers than GPUs x K would overload a GPU, so that is refused.
    """
    if workers > len(devices) * runs_per_gpu:
        raise ConfigError("--workers", workers, f"at most {len(devices) * runs_per_gpu} "
                          f"({len(devices)} GPU(s) x --runs-per-gpu {runs_per_gpu})")
    return [devices[i % len(devices)] for i in range(workers)]


@dataclass(frozen=True)
class WorkerPlan:
    """How many worker processes to start and, on GPUs, each one's CUDA_VISIBLE_DEVICES (empty: CPU workers)."""

    workers: int
    gpus: tuple[str, ...] = ()

    @property
    def on_gpus(self) -> bool:
        return bool(self.gpus)


def gpu_groups(devices: list[str], gpus_per_run: int) -> list[str]:
    """The GPUs in groups of ``gpus_per_run`` (a distributed run's CUDA_VISIBLE_DEVICES, e.g. "0,1"), in order;
    GPUs left over after the last full group stay idle."""
    if gpus_per_run > len(devices):
        raise ConfigError("runtime.nproc_per_node", gpus_per_run,
                          f"at most {len(devices)}, the GPUs given to the workers (--gpus)")
    return [",".join(devices[i:i + gpus_per_run]) for i in range(0, len(devices) - gpus_per_run + 1, gpus_per_run)]


def gpu_plan(request: GpuRequest, runs_per_gpu: int, workers: int | None,
             devices: list[str] | None = None, gpus_per_run: int = 1) -> WorkerPlan:
    """Check ``--gpus``/``--runs-per-gpu``/``--workers`` against the visible GPUs (``devices``, counted when
    None) and decide the workers. ``workers=None`` means GPU groups x K on a GPU machine, else 1.
    ``gpus_per_run`` (the cells' ``runtime.nproc_per_node``): each worker is given that many GPUs, on which
    its distributed runs start their ranks; K then counts runs per group of GPUs."""
    if isinstance(runs_per_gpu, bool) or runs_per_gpu < 1:
        raise ConfigError("--runs-per-gpu", runs_per_gpu, "an integer >= 1")
    if workers is not None and workers < 1:
        raise ConfigError("--workers", workers, "an integer >= 1")
    if not request.auto and not request.indices:
        return WorkerPlan(workers or 1)
    devices = visible_devices() if devices is None else devices
    if request.auto:
        chosen = devices
        if not chosen:
            return WorkerPlan(workers or 1)  # no GPU: today's CPU workers
    else:
        missing = [i for i in request.indices if i >= len(devices)]
        if missing:
            have = f"indices 0..{len(devices) - 1}" if devices else "none: this machine shows no GPU"
            raise ConfigError("--gpus", ",".join(map(str, request.indices)), f"visible GPU indices ({have})")
        chosen = [devices[i] for i in request.indices]
    groups = gpu_groups(chosen, gpus_per_run)
    workers = workers or len(groups) * runs_per_gpu
    return WorkerPlan(workers, tuple(assign_gpus(groups, runs_per_gpu, workers)))


def check_workers(workers: int, gpus: tuple[str, ...], tracking_uri: str) -> None:
    """Worker processes and their GPUs agree (one CUDA_VISIBLE_DEVICES each), and a ``memory://`` tracking
    store, which lives in one process, has one worker on the CPU (this process)."""
    if gpus and len(gpus) != workers:
        raise ConfigError("gpus", ",".join(gpus), f"one CUDA_VISIBLE_DEVICES per worker ({workers})")
    if workers > 1 or gpus:
        require_shared_store(tracking_uri, "--workers", workers, "1 and --gpus none with a memory:// tracking "
                             "store (it lives in one process)")


def use_only_gpu(device: str) -> None:
    """In a fresh worker process, before torch touches CUDA: see only GPU ``device`` (as ``cuda:0``), or the
    group ``device`` lists ("0,1": a distributed run's ranks on ``cuda:0`` and ``cuda:1``)."""
    os.environ[CUDA_VISIBLE_DEVICES] = device
