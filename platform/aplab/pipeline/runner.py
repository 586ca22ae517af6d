"""Runs a pipeline's cells: skips those the tracking store has FINISHED, trains the rest, in N processes.

Re-running an interrupted pipeline continues where it stopped: finished cells are found in the store
by their config hash, and a cell killed mid-run resumes from its checkpoint (``train`` does that).
A failed cell is reported, never stops the others, and is tried again by the next run of the pipeline
(only FINISHED runs in the store count as done).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue as queue_module
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TextIO

from tqdm.auto import tqdm

from ..errors import ConfigError
from ..keys import T
from ..processes import cores_share, die_with_parent
from ..scale.gpus import check_workers, use_only_gpu
from ..scale.slurm import use_slurm
from ..tracking import Tracker, default_uri, make_tracker
from .spec import Cell

logger = logging.getLogger(__name__)

#: Outcome of a cell: trained now (FINISHED), found finished in the store (DONE), found finished in its
#: run folder by train() (SKIPPED), or not finished: FAILED, or KILLED (interrupted; a re-run resumes it).
#: FINISHED, SKIPPED, FAILED and KILLED are the names of train()'s RunStatus.
STATUSES = ("FINISHED", "DONE", "SKIPPED", "FAILED", "KILLED")
NOT_DONE = ("FAILED", "KILLED")


@dataclass
class CellOutcome:
    """What happened to one cell in this invocation."""

    cell: Cell
    status: str
    run_id: str | None = None
    summary: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    synced: bool = True  # False when the tracking store has not received all of the run yet


@dataclass
class PipelineResult:
    """Every cell's outcome, in matrix order, and where the runs are tracked."""

    name: str
    experiment: str
    tracking_uri: str
    outcomes: list[CellOutcome]
    seconds: float = 0.0

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status in NOT_DONE]

    def counts(self) -> dict[str, int]:
        return {status: sum(o.status == status for o in self.outcomes) for status in STATUSES}

    def summary_line(self) -> str:
        c = self.counts()
        unsynced = sum(not o.synced for o in self.outcomes if o.status not in NOT_DONE)
        late = (f"; {unsynced} not yet in the tracking store (re-run when it is reachable, or `aplab sync`)"
                if unsynced else "")
        killed = f", {c['KILLED']} killed" if c["KILLED"] else ""
        return (f"pipeline {self.name}: {len(self.outcomes)} runs: {c['FINISHED']} trained now, "
                f"{c['DONE'] + c['SKIPPED']} already finished, {c['FAILED']} failed{killed} "
                f"({self.seconds:.0f} s){late}")


def finished_hashes(tracker: Tracker, experiment: str) -> set[str]:
    """Config hashes of the runs the store has FINISHED in ``experiment``."""
    return {r.tags[T.CONFIG_HASH] for r in tracker.find_runs(experiment)
            if r.status == "FINISHED" and T.CONFIG_HASH in r.tags}


def train_cell(cell: Cell, tracker: Tracker, tags: dict[str, str],
                on_epoch: Callable[[int, dict[str, float]], None] | None) -> dict[str, Any]:
    """Train one cell; every exception becomes a FAILED outcome (as plain data, safe to send between processes)."""
    from ..train import train

    start = time.perf_counter()
    try:
        result = train(cell.config, tracker, extra_tags=tags, progress=False, on_epoch=on_epoch)
        status = str(result.status)  # a RunStatus (a StrEnum): plain data between processes
        error = f"the run ended {status} (run folder {result.run_dir})" if status in NOT_DONE else None
        return {"status": status, "run_id": result.run_id, "summary": result.summary, "error": error,
                "seconds": time.perf_counter() - start, "synced": result.synced}
    except Exception as err:  # a failed cell must not stop the others
        return {"status": "FAILED", "run_id": None, "summary": {}, "error": f"{type(err).__name__}: {err}",
                "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- worker processes

_TICKS: Any = None
_TRACKERS: dict[str, Tracker] = {}


def _init_worker(ticks: Any, threads: int, parent: int, gpu_slots: Any) -> None:
    """Set up a spawned worker: its GPU (taken from ``gpu_slots``, before torch touches CUDA), threads, death."""
    global _TICKS
    _TICKS = ticks
    die_with_parent(parent)
    use_slurm()
    if gpu_slots is not None:
        use_only_gpu(gpu_slots.get())
    import torch

    torch.set_num_threads(threads)


def _run_in_worker(cell: Cell, uri: str, tags: dict[str, str]) -> dict[str, Any]:
    if uri not in _TRACKERS:
        _TRACKERS[uri] = make_tracker(uri)

    def tick(epoch: int, metrics: dict[str, float]) -> None:
        _TICKS.put((cell.index, epoch))

    return train_cell(cell, _TRACKERS[uri], tags, tick)


# ----------------------------------------------------------------------------- the loop


class _Progress:
    """A tqdm bar over runs that advances by fractions of a run as epochs finish (for a steady ETA)."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} runs [{elapsed}<{remaining}{postfix}]"

    def __init__(self, cells: list[Cell], name: str, enabled: bool, stream: TextIO):
        self.epochs = {c.index: c.config.optim.epochs for c in cells}
        self.done: dict[int, float] = {c.index: 0.0 for c in cells}
        self.failed = 0
        self.bar = tqdm(total=len(cells), desc=name, bar_format=self.FORMAT, disable=None if enabled else True, file=stream,
                        dynamic_ncols=True)

    def epoch(self, index: int, epoch: int) -> None:
        self._advance(index, min(epoch / self.epochs[index], 0.99))

    def finished(self, outcome: CellOutcome) -> None:
        self._advance(outcome.cell.index, 1.0)
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
                 description: str = "", gpus: tuple[str, ...] = ()) -> PipelineResult:
    """Run every cell not yet FINISHED in the store; ``workers`` > 1 trains cells in that many processes.

    ``gpus`` (from ``aplab.scale.gpus.gpu_plan``) is each worker's CUDA_VISIBLE_DEVICES: then every cell
    trains in a spawned worker, even with one worker, so that its GPU is set before CUDA initialises.
    Every run is tagged ``pipeline=<name>``; the experiment's description (shown by MLflow's UI) says
    which pipeline fills it. A ``memory://`` store lives in one process, so it needs ``workers=1`` without
    GPUs (and the same ``tracker`` object to be read back).
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
    outcomes = {c.index: CellOutcome(c, "DONE") for c in cells if c.digest in done}
    todo = [c for c in cells if c.digest not in done]
    tags = {T.PIPELINE: name}
    if outcomes:
        logger.info("%d of %d runs already finished in %s; %d to run", len(outcomes), len(cells), experiment,
                    len(todo))
    bar = _Progress(todo, name, progress and bool(todo), stream)
    try:
        if not gpus and (workers == 1 or len(todo) <= 1):
            for cell in todo:
                data = train_cell(cell, tracker, tags, lambda epoch, _m, i=cell.index: bar.epoch(i, epoch))
                outcomes[cell.index] = _outcome(cell, data)
                bar.finished(outcomes[cell.index])
        else:
            outcomes.update(_run_pool(todo, uri, tags, workers, bar, gpus))
    finally:
        bar.close()
    ordered = [outcomes[c.index] for c in cells]
    return PipelineResult(name, experiment, uri, ordered, time.perf_counter() - start)


def experiment_description(name: str, description: str, runs: int) -> str:
    """The experiment's note: the pipeline that fills it, what it is, and how to reproduce or report it."""
    what = f": {description}" if description else ""
    return (f"Runs of the aplab pipeline `{name}`{what} ({runs} runs, each tagged {T.PIPELINE}={name}). "
            f"Re-run `aplab pipeline run <file>` to finish or retry its runs; `aplab report <file>` for its tables "
            "and figures.")


def _run_pool(todo: list[Cell], uri: str, tags: dict[str, str], workers: int, bar: _Progress,
              gpus: tuple[str, ...] = ()) -> dict[int, CellOutcome]:
    context = multiprocessing.get_context("spawn")  # no fork after torch's threads started (or CUDA counted GPUs)
    ticks = context.Queue()
    gpu_slots = None
    if gpus:  # each worker process takes one slot as it starts: K slots per GPU
        gpu_slots = context.Queue()
        for device in gpus:
            gpu_slots.put(device)
    threads = cores_share(workers)
    outcomes: dict[int, CellOutcome] = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                             initializer=_init_worker, initargs=(ticks, threads, os.getpid(), gpu_slots)) as pool:
        futures: dict[Future, Cell] = {pool.submit(_run_in_worker, cell, uri, tags): cell for cell in todo}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _drain(ticks, bar)
            for future in finished:
                cell = futures[future]
                try:
                    data = future.result()
                except BrokenProcessPool as err:
                    data = {"status": "FAILED", "run_id": None, "summary": {}, "seconds": 0.0,
                            "error": f"worker process died ({err}); re-run to resume it"}
                outcomes[cell.index] = _outcome(cell, data)
                bar.finished(outcomes[cell.index])
    return outcomes


def _drain(ticks: Any, bar: _Progress) -> None:
    while True:
        try:
            index, epoch = ticks.get_nowait()
        except queue_module.Empty:
            return
        bar.epoch(index, epoch)
