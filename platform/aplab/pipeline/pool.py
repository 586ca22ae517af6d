"""The pipeline's worker processes. Each worker is handed one job at a time and says when it is done, so a worker
that dies (SIGKILL, out of memory) fails only the job it held: a new worker takes its place and the others train on.

``concurrent.futures.ProcessPoolExecutor`` cannot do this: one dead worker breaks the pool, which stops every
other worker and fails every job not yet done.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue as queue_module
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..processes import die_with_parent
from ..status import Outcome
from ..tracking import Tracker, make_tracker
from ..workers.gpus import use_only_gpu
from ..workers.slurm import use_slurm
from .cells import train_job
from .spec import Cell

POLL_SECONDS = 0.5  # how often the pool looks for dead workers while no message comes
STOP_SECONDS = 60.0  # how long a stopping worker may take to end its run (KILLED, resumable) before it is killed


def _worker_main(tasks: Any, results: Any, ident: int, threads: int, parent: int, device: str | None) -> None:
    """A spawned worker: its GPU (before torch touches CUDA), threads and death with the pipeline; then jobs."""
    die_with_parent(parent)
    use_slurm()
    if device is not None:
        use_only_gpu(device)
    import torch

    torch.set_num_threads(threads)
    trackers: dict[str, Tracker] = {}
    while (task := tasks.get()) is not None:
        number, job, uri, tags = task
        if uri not in trackers:
            trackers[uri] = make_tracker(uri)

        def ticks(cell: Cell):
            return lambda epoch, metrics: results.put(("epoch", cell.index, epoch))

        results.put(("done", ident, number, train_job(job, trackers[uri], tags, ticks)))


@dataclass
class _Worker:
    process: Any
    tasks: Any
    device: str | None
    job: int | None = None  # the number of the job it holds
    stopping: bool = False  # told that no job is left


def died(process: Any, job: list[Cell]) -> list[dict[str, Any]]:
    """The outcome of each cell of a job whose worker died before reporting it."""
    code = process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    return [{"status": Outcome.FAILED, "run_id": None, "summary": {}, "seconds": 0.0,
             "error": f"its worker process died ({how}); re-run the pipeline to resume it"} for _ in job]


def run_jobs(jobs: list[list[Cell]], uri: str, tags: dict[str, str], workers: int, threads: int,
             devices: tuple[str, ...], on_epoch: Callable[[int, int], None],
             on_done: Callable[[list[Cell], list[dict[str, Any]]], None]) -> None:
    """Train ``jobs`` in ``workers`` spawned processes (worker ``i`` on ``devices[i]`` when given), calling
    ``on_epoch(cell index, epoch)`` and ``on_done(job, outcomes)`` in this process as they come."""
    context = multiprocessing.get_context("spawn")  # no fork after torch's threads started (or CUDA counted GPUs)
    results = context.Queue()
    todo = deque(enumerate(jobs))
    live: dict[int, _Worker] = {}
    idents = itertools.count()

    def start(device: str | None) -> None:
        ident, tasks = next(idents), context.Queue()
        process = context.Process(target=_worker_main, args=(tasks, results, ident, threads, os.getpid(), device),
                                  name=f"aplab-worker-{ident}")
        process.start()
        live[ident] = _Worker(process, tasks, device)

    reported: set[int] = set()

    def report(number: int, outcomes: list[dict[str, Any]]) -> None:
        if number not in reported:
            reported.add(number)
            on_done(jobs[number], outcomes)

    def handle(message: tuple) -> None:
        if message[0] == "epoch":
            on_epoch(message[1], message[2])
            return
        _, ident, number, outcomes = message
        if ident in live:
            live[ident].job = None
        report(number, outcomes)

    def drain() -> None:
        while True:
            try:
                handle(results.get_nowait())
            except queue_module.Empty:
                return

    try:
        for slot in range(min(workers, len(jobs))):
            start(devices[slot] if devices else None)
        while live:
            for worker in live.values():
                if worker.job is None and todo:
                    worker.job, job = todo.popleft()
                    worker.tasks.put((worker.job, job, uri, tags))
            try:
                handle(results.get(timeout=POLL_SECONDS))
            except queue_module.Empty:
                pass
            for ident, worker in list(live.items()):
                if worker.process.is_alive():
                    if worker.job is None and not todo and not worker.stopping:
                        worker.tasks.put(None)  # nothing left for it
                        worker.stopping = True
                    continue
                drain()  # what it said before it ended
                del live[ident]
                if worker.job is not None:
                    report(worker.job, died(worker.process, jobs[worker.job]))
                    if todo:
                        start(worker.device)  # its place, for the jobs still waiting
        for number, job in todo:  # every worker died before taking them (it could not start)
            report(number, [{"status": Outcome.FAILED, "run_id": None, "summary": {}, "seconds": 0.0,
                             "error": "no worker process could start; see the errors above"} for _ in job])
    finally:
        for worker in live.values():
            worker.tasks.put(None)
        for worker in live.values():
            worker.process.join(STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
