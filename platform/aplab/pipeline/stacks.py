"""``--stack K|auto``: a pipeline's cells as stacks, runs trained together as one fused model (``train.stack``).

Cells stack when they share what a stack shares (``train.stack.stack_key``: dataset, model, epochs, batch
size, augmentation, schedule, precision, device); the rest train solo. ``K`` puts at most K cells in a stack,
``auto`` at most ``AUTO_CAP`` for the device kind (what the benchmarks found worth it, benchmarks/RESULTS.md),
and the worker that trains a stack splits it further when its members would not fit the device's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .spec import Cell

#: members of an ``auto`` stack at most, per device kind. On a CPU fusing does not pay (benchmarks/RESULTS.md,
#: "Stacked training": its convolutions are compute-bound, and grouped ones are slower there at 28 px), so
#: ``auto`` trains each run alone; ``--stack K`` still stacks on a CPU when asked.
AUTO_CAP = {"cuda": 32, "cpu": 1}


@dataclass(frozen=True)
class StackRequest:
    """What ``--stack`` asked for: ``size`` members at most, or None for ``auto``."""

    size: int | None = 1

    def cap(self, device_kind: str) -> int:
        return self.size if self.size is not None else AUTO_CAP[device_kind]

    def __str__(self) -> str:
        return "auto" if self.size is None else str(self.size)


SOLO = StackRequest(1)


def parse_stack(text: str | int) -> StackRequest:
    """``auto`` or a positive integer."""
    value = str(text).strip().lower()
    if value == "auto":
        return StackRequest(None)
    if not value.isdigit() or int(value) < 1:
        raise ConfigError("--stack", text, "a positive integer (runs per stack; 1: each run alone) or auto")
    return StackRequest(int(value))


def stack_jobs(cells: list[Cell], request: StackRequest, device_kind: str) -> list[list[Cell]]:
    """The cells as jobs (a job of one cell trains solo), each job's cells in matrix order, the jobs in the
    order of their first cells."""
    cap = request.cap(device_kind)
    if cap == 1:
        return [[cell] for cell in cells]
    from ..train.stack import stack_key

    jobs: list[list[Cell]] = []
    open_job: dict[tuple, list[Cell]] = {}
    for cell in cells:
        key = stack_key(cell.config)
        if key is None:
            jobs.append([cell])
            continue
        job = open_job.get(key)
        if job is None or len(job) == cap:
            job = open_job[key] = []
            jobs.append(job)
        job.append(cell)
    return jobs
