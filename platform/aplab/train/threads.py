"""How many intra-op threads a run computes with: the cores this process may use and that are free now.

A run that takes a thread per core while other work keeps a core busy waits for that core at every
parallel region (5x slower epochs on a 2-core machine beside one busy loop, issue 24), so ``auto`` counts
only the cores of its allocation (affinity, Slurm's) that were mostly idle over a short sample.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: A core counts as free when it was idle at least this fraction of the sample.
FREE_IDLE_FRACTION = 0.5
#: How long /proc/stat is sampled (seconds): once per run, before its data is prepared.
SAMPLE_SECONDS = 0.2


def allowed_cores(environ: Mapping[str, str] = os.environ) -> int:
    """The cores this process may run on: its CPU affinity, capped by Slurm's allocation per task (or on the
    node) where a job does not confine its tasks to their cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = environ.get(name, "")
        if value.isdigit() and int(value) >= 1:
            return max(1, min(cores, int(value)))
    return max(1, cores)


def read_cpu_times(stat: Path = Path("/proc/stat")) -> dict[int, tuple[int, int]]:
    """``{cpu: (idle, total)}`` jiffies per core from /proc/stat (idle includes iowait); {} where unreadable."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return {}
    times = {}
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            numbers = [int(v) for v in values[:8]]
            times[int(name[3:])] = (numbers[3] + numbers[4], sum(numbers))
    return times


def free_cores(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cores: set[int]) -> int:
    """How many of ``cores`` were idle at least FREE_IDLE_FRACTION of the time between two samples."""
    free = 0
    for cpu in cores:
        if cpu not in before or cpu not in after:
            free += 1  # nothing known of it: assume free
            continue
        idle, total = after[cpu][0] - before[cpu][0], after[cpu][1] - before[cpu][1]
        free += total <= 0 or idle / total >= FREE_IDLE_FRACTION
    return free


def sample_free_cores(cores: set[int], seconds: float = SAMPLE_SECONDS,
                      read: Callable[[], dict[int, tuple[int, int]]] = read_cpu_times) -> int:
    """Free cores among ``cores`` over ``seconds`` of /proc/stat (all of them where it cannot be read)."""
    before = read()
    if not before:
        return len(cores)
    time.sleep(seconds)
    return free_cores(before, read(), cores)


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op threads of a run and why (printed in its log line, recorded as its threads tag)."""

    threads: int
    reason: str


def choose_threads(requested: int | None, ceiling: int, environ: Mapping[str, str] = os.environ,
                   free: Callable[[set[int]], int] | None = None) -> ThreadChoice:
    """``requested`` (runtime.threads / --threads) when set; else at most ``ceiling`` (what torch had before aplab
    set it: its default, or the share a pipeline worker or rank launcher gave this process): OMP_NUM_THREADS
    when the user set it, else the free cores of this process's allocation, at least 1."""
    if requested is not None:
        return ThreadChoice(requested, "runtime.threads")
    if environ.get("OMP_NUM_THREADS", "").isdigit() and int(environ["OMP_NUM_THREADS"]) >= 1:
        return ThreadChoice(max(1, min(ceiling, int(environ["OMP_NUM_THREADS"]))), "OMP_NUM_THREADS")
    allowed = allowed_cores(environ)
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    idle = (free or sample_free_cores)(set(cores))
    threads = max(1, min(ceiling, allowed, idle))
    return ThreadChoice(threads, f"{idle} of {allowed} allowed cores free")
