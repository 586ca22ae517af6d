"""Runs a pipeline's cells: skips those the tracking store has FINISHED, trains the rest, in N processes.

Re-running an interrupted pipeline continues where it stopped: finished cells are found in the store
by their config hash, and a cell killed mid-run resumes from its checkpoint (``train`` does that).
A failed cell is reported, never stops the others, and is tried again by the next run of the pipeline
(only FINISHED runs in the store count as done).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm

from ..errors import ConfigError
from ..keys import M, T
from ..processes import cores_share
from ..status import Outcome
from ..tracking import Tracker, default_uri, make_tracker
from ..workers.gpus import check_workers
from .busy import wait_for_free
from .cells import NOT_DONE, CellOutcome, PipelineResult, experiment_description, finished_hashes, train_job
from .pool import run_jobs
from .spec import Cell
from .stacks import SOLO, StackRequest, stack_jobs

logger = logging.getLogger(__name__)

class _Progress:
    """A tqdm bar over runs that advances by fractions of a run as epochs finish (for a steady ETA)."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} runs [{elapsed}<{remaining}{postfix}]"

    def __init__(self, cells: list[Cell], name: str, enabled: bool, stream: TextIO):
        self.epochs = {c.index: c.config.optim.epochs for c in cells}
        self.done: dict[int, float] = {c.index: 0.0 for c in cells}
        self.failed = 0
        self.finished_runs = 0
        self.bar = tqdm(total=len(cells), desc=name, bar_format=self.FORMAT, disable=None if enabled else True, file=stream,
                        dynamic_ncols=True)
        self.lines = enabled and self.bar.disable  # no terminal (a pipe, CI, a log file): a line per finished run
        self.stream = stream

    def epoch(self, index: int, epoch: int) -> None:
        self._advance(index, min(epoch / self.epochs[index], 0.99))

    def finished(self, outcome: CellOutcome) -> None:
        if outcome.status == Outcome.BUSY:  # trained elsewhere: waited for, then taken up again
            return
        self._advance(outcome.cell.index, 1.0)
        self.finished_runs += 1
        if self.lines and outcome.status not in NOT_DONE:
            acc = outcome.summary.get(M.TEST_ACC_LAST)
            result = f": test/acc {100 * acc:.2f}%" if acc is not None else ""
            print(f"[aplab] {self.finished_runs}/{len(self.done)} {outcome.status} {outcome.cell.label}{result} "
                  f"({outcome.seconds:.0f} s)", file=self.stream, flush=True)
        if outcome.status in NOT_DONE:
            self.failed += 1
            self.bar.write(f"[aplab] {outcome.status} {outcome.cell.label} (config {outcome.cell.digest}): "
                           f"{outcome.error}")
        self.bar.set_postfix_str(f"{self.failed} failed" if self.failed else "", refresh=True)

    def _advance(self, index: int, fraction: float) -> None:
        if fraction > self.done[index]:
            self.done[index] = fraction
            total = min(round(sum(self.done.values()), 6), float(self.bar.total))  # no float overshoot
            self.bar.update(total - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _outcome(cell: Cell, data: dict[str, Any]) -> CellOutcome:
    return CellOutcome(cell, data["status"], data["run_id"], data["summary"], data["error"], data["seconds"],
                       data.get("synced", True))


def run_pipeline(cells: list[Cell], name: str, tracker: Tracker | None = None, tracking_uri: str | None = None,
                 workers: int = 1, progress: bool = True, stream: TextIO | None = None,
                 description: str = "", gpus: tuple[str, ...] = (), stack: StackRequest = SOLO) -> PipelineResult:
    """Run every cell not yet FINISHED in the store; ``workers`` > 1 trains cells in that many processes.

    ``gpus`` (from ``aplab.workers.gpus.gpu_plan``) is each worker's CUDA_VISIBLE_DEVICES: then every cell
    trains in a spawned worker, even with one worker, so that its GPU is set before CUDA initialises.
    Every run is tagged ``pipeline=<name>``; the experiment's description (shown by MLflow's UI) says
    which pipeline fills it. A ``memory://`` store lives in one process, so it needs ``workers=1`` without
    GPUs (and the same ``tracker`` object to be read back). ``stack`` trains compatible cells together as
    stacks (``pipeline.stacks``), each job (a stack, or a cell alone) in one worker.
    """
    if workers < 1:
        raise ConfigError("--workers", workers, "an integer >= 1")
    check_workers(workers, gpus, tracker.uri if tracker is not None else default_uri(tracking_uri))
    if not cells:
        raise ConfigError("pipeline", name, "a matrix with at least one cell")
    stream = stream or sys.stderr
    tracker = tracker or make_tracker(tracking_uri)
    uri = tracker.uri
    tracker.check()
    experiment = cells[0].config.tracking.experiment
    start = time.perf_counter()
    tracker.describe_experiment(experiment, experiment_description(name, description, len(cells)))
    done = finished_hashes(tracker, experiment)
    outcomes = {c.index: CellOutcome(c, Outcome.DONE) for c in cells if c.digest in done}
    todo = [c for c in cells if c.digest not in done]
    tags = {T.PIPELINE: name}
    if outcomes:
        logger.info("%d of %d runs already finished in %s; %d to run", len(outcomes), len(cells), experiment,
                    len(todo))
    jobs = stack_jobs(todo, stack, "cuda" if gpus else "cpu")
    if len(jobs) < len(todo):
        logger.info("%d runs as %d jobs (--stack %s)", len(todo), len(jobs), stack)
    bar = _Progress(todo, name, progress and bool(todo), stream)
    busy: dict[int, Cell] = {}  # cells another process trains: waited for, then taken up again alone
    try:
        while jobs:
            for index, outcome in _train_jobs(jobs, tracker, tags, workers, bar, gpus).items():
                outcomes[index] = outcome
                busy.pop(index, None)
                if outcome.status == Outcome.BUSY:
                    busy[index] = outcome.cell
            jobs = [[cell] for cell in wait_for_free(list(busy.values()))] if busy else []
    finally:
        bar.close()
    ordered = [outcomes[c.index] for c in cells]
    return PipelineResult(name, experiment, uri, ordered, time.perf_counter() - start)


def _train_jobs(jobs: list[list[Cell]], tracker: Tracker, tags: dict[str, str], workers: int, bar: _Progress,
                gpus: tuple[str, ...]) -> dict[int, CellOutcome]:
    """Train the jobs here, one after the other, or in a pool of worker processes; each cell's outcome."""
    outcomes: dict[int, CellOutcome] = {}

    def done(job: list[Cell], datas: list[dict[str, Any]]) -> None:
        for cell, data in zip(job, datas):
            outcomes[cell.index] = _outcome(cell, data)
            bar.finished(outcomes[cell.index])

    if not gpus and (workers == 1 or len(jobs) <= 1):
        for job in jobs:
            done(job, train_job(job, tracker, tags, lambda c: lambda epoch, _m: bar.epoch(c.index, epoch)))
    else:
        run_jobs(jobs, tracker.uri, tags, workers, cores_share(workers), gpus, bar.epoch, done)
    return outcomes
