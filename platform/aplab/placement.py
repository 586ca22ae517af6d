"""Where a run trains: its placement tags, and the batch scheduler (Slurm) whose task it may be.

A foundation module: ``train/`` asks it and knows no scheduler. The executor layer hands one in with
``use_scheduler`` (the CLI and every worker entry point do, before training), and ranks receive the
parent's. Without one a run is a plain process: no scheduler tags, and its claim goes by heartbeat alone.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Protocol

from .errors import AplabError
from .keys import T

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"

log = logging.getLogger(__name__)


class SchedulerUnavailable(AplabError):
    """The scheduler cannot be asked (its commands are missing or failing)."""


class TaskScheduler(Protocol):
    """A batch scheduler a run may run under: picklable (ranks receive it), and cheap to ask."""

    def current_task(self) -> tuple[str, str | None] | None:
        """(job, array index or None) of this process's task; None outside a task."""

    def active_tasks(self, job_ids: list[str]) -> set[str]:
        """The task ids (``task_id``) of these jobs still queued or running; raises SchedulerUnavailable."""


_scheduler: TaskScheduler | None = None


def use_scheduler(scheduler: TaskScheduler | None) -> None:
    """Set the scheduler this process's runs ask (None: none)."""
    global _scheduler
    _scheduler = scheduler


def current_scheduler() -> TaskScheduler | None:
    return _scheduler


def task_id(job: str, index: str | None) -> str:
    """A task as schedulers name it: ``<job>_<index>`` in an array, ``<job>`` alone."""
    return f"{job}_{index}" if index not in (None, "", "N/A") else job


def current_task() -> tuple[str, str | None] | None:
    """(job, index) of the task this process runs in, under the scheduler in use; None outside one."""
    return _scheduler.current_task() if _scheduler is not None else None


def task_gone(job: str, task: str) -> str | None:
    """Why ``task`` of ``job`` no longer runs what it recorded: it is this process's own task, requeued (a
    scheduler runs one instance of a task at a time), or it is neither queued nor running; None while it may,
    or where no scheduler can be asked (the caller's heartbeat then decides)."""
    own = current_task()
    if own is not None and task == task_id(*own):
        return f"it was this Slurm task {task} before its requeue"
    scheduler = current_scheduler()
    if scheduler is None:
        return None
    try:
        active = scheduler.active_tasks([job])
    except SchedulerUnavailable as err:
        log.info("%s; going by the heartbeat", err)
        return None
    return None if task in active else f"its Slurm task {task} is no longer queued or running"


def scheduler_tags() -> dict[str, str]:
    """The job and array task this process runs in, as run tags; empty outside a scheduler's task."""
    task = current_task()
    if task is None:
        return {}
    job, index = task
    return {T.SLURM_JOB_ID: job, **({T.SLURM_TASK_ID: index} if index else {})}


def placement_tags(device) -> dict[str, str]:
    """Where a run trains (tags of the run): the host, the scheduler's job and array task (in one), the
    CUDA_VISIBLE_DEVICES it was given (when set) and, on CUDA, the physical GPU's index and name."""
    tags = {T.HOST: socket.gethostname(), **scheduler_tags()}
    listed = os.environ.get(CUDA_VISIBLE_DEVICES)
    if listed is not None:
        tags[T.CUDA_VISIBLE_DEVICES] = listed
    if getattr(device, "type", None) != "cuda":
        return tags
    import torch

    index = device.index or 0
    physical = [p.strip() for p in listed.split(",")] if listed else []
    tags[T.GPU_INDEX] = physical[index] if index < len(physical) else str(index)
    tags[T.GPU_NAME] = torch.cuda.get_device_name(index)
    return tags
