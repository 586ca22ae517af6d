"""What any executor does with a pipeline's cells: train one (every failure an outcome, as plain data that
crosses processes), find the store's FINISHED ones, and the outcomes and summary of a whole run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RunClaimed
from ..keys import T
from ..status import Outcome, RunStatus
from ..tracking import Tracker
from .spec import Cell


#: The outcomes that leave a cell to the next run of the pipeline (``status.Outcome``).
NOT_DONE = tuple(o for o in Outcome if not o.done)


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
        return {status: sum(o.status == status for o in self.outcomes) for status in Outcome}

    def summary_line(self) -> str:
        c = self.counts()
        unsynced = sum(not o.synced for o in self.outcomes if o.status not in NOT_DONE)
        late = (f"; {unsynced} not yet in the tracking store (re-run when it is reachable, or `aplab sync`)"
                if unsynced else "")
        unfinished = "".join(f", {c[status]} {words}" for status, words in (("KILLED", "killed"),
                             ("NOT_STARTED", "not started")) if c[status])
        return (f"pipeline {self.name}: {len(self.outcomes)} runs: {c['FINISHED']} trained now, "
                f"{c['DONE'] + c['SKIPPED']} already finished, {c['FAILED']} failed{unfinished} "
                f"({self.seconds:.0f} s){late}")


def finished_hashes(tracker: Tracker, experiment: str) -> set[str]:
    """Config hashes of the runs the store has FINISHED in ``experiment``."""
    return {r.tags[T.CONFIG_HASH] for r in tracker.find_runs(experiment)
            if r.status == RunStatus.FINISHED and T.CONFIG_HASH in r.tags}


def train_cell(cell: Cell, tracker: Tracker, tags: dict[str, str],
                on_epoch: Callable[[int, dict[str, float]], None] | None) -> dict[str, Any]:
    """Train one cell; every exception becomes a FAILED outcome (as plain data, safe to send between processes)."""
    from ..train import train

    start = time.perf_counter()
    try:
        result = train(cell.config, tracker, extra_tags=tags, progress=False, on_epoch=on_epoch)
    except Exception as err:  # a failed cell must not stop the others
        return failure_data(err, time.perf_counter() - start)
    return result_data(result, time.perf_counter() - start)


def train_job(cells: list[Cell], tracker: Tracker, tags: dict[str, str],
              on_epoch: Callable[[Cell], Callable[[int, dict[str, float]], None] | None]) -> list[dict[str, Any]]:
    """Train a job's cells: one alone, more as one stack (``train.stack``); each cell's outcome as plain data."""
    if len(cells) == 1:
        return [train_cell(cells[0], tracker, tags, on_epoch(cells[0]))]
    from ..train import train_stack

    start = time.perf_counter()
    try:
        results = train_stack([c.config for c in cells], tracker, progress=False, extra_tags=[tags] * len(cells),
                              on_epoch=[on_epoch(c) for c in cells])
    except Exception as err:  # the stack could not start: each of its cells failed alike
        return [failure_data(err, time.perf_counter() - start) for _ in cells]
    seconds = time.perf_counter() - start
    return [failure_data(r, seconds) if isinstance(r, BaseException) else result_data(r, seconds) for r in results]


def result_data(result, seconds: float) -> dict[str, Any]:
    status = str(result.status)  # a RunStatus (a StrEnum): plain data between processes
    error = f"the run ended {status} (run folder {result.run_dir})" if status in NOT_DONE else None
    return {"status": status, "run_id": result.run_id, "summary": result.summary, "error": error,
            "seconds": seconds, "synced": result.synced}


def failure_data(err: BaseException, seconds: float) -> dict[str, Any]:
    """A cell that did not train: BUSY where another live process holds its claim, else FAILED."""
    status = Outcome.BUSY if isinstance(err, RunClaimed) else Outcome.FAILED
    return {"status": status, "run_id": None, "summary": {}, "error": f"{type(err).__name__}: {err}",
            "seconds": seconds}


def experiment_description(name: str, description: str, runs: int) -> str:
    """The experiment's note: the pipeline that fills it, what it is, and how to reproduce or report it."""
    what = f": {description}" if description else ""
    return (f"Runs of the aplab pipeline `{name}`{what} ({runs} runs, each tagged {T.PIPELINE}={name}). "
            f"Re-run `aplab pipeline run <file>` to finish or retry its runs; `aplab report <file>` for its tables "
            "and figures.")
