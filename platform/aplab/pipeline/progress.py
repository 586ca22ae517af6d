"""Where a pipeline stands, read from the tracking store whatever executed its cells (here, other hosts, Slurm).

A cell is FINISHED when a run with its config hash finished, RUNNING when one is running (or scheduled),
FAILED when its runs all ended FAILED or KILLED (the next ``aplab pipeline run`` retries or resumes it), and
PENDING when the store has no run of it (``status.CellState``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..keys import T
from ..status import MLFLOW_SCHEDULED, CellState, RunStatus
from ..tracking import Tracker
from .spec import Cell

#: A run's status in the store -> the state it gives its cell; the most advanced (first in CellState) decides.
STATE_OF_RUN = {RunStatus.FINISHED: CellState.FINISHED, RunStatus.RUNNING: CellState.RUNNING,
                MLFLOW_SCHEDULED: CellState.RUNNING, RunStatus.FAILED: CellState.FAILED,
                RunStatus.KILLED: CellState.FAILED}
_RANK = {state: rank for rank, state in enumerate(CellState)}


@dataclass(frozen=True)
class CellProgress:
    """One cell's standing in the store, and the run that says so (None when PENDING)."""

    cell: Cell
    state: CellState
    run_id: str | None = None


def cell_states(tracker: Tracker, cells: list[Cell]) -> list[CellProgress]:
    """Each cell's state (in matrix order) from its runs in the store, the most advanced one deciding."""
    if not cells:
        return []
    experiment = cells[0].config.tracking.experiment
    best: dict[str, tuple[int, str]] = {}
    for run in tracker.find_runs(experiment):
        digest = run.tags.get(T.CONFIG_HASH)
        state = STATE_OF_RUN.get(run.status)
        if digest is None or state is None:
            continue
        if digest not in best or _RANK[state] < best[digest][0]:
            best[digest] = (_RANK[state], run.run_id)
    states = []
    for cell in cells:
        if cell.digest not in best:
            states.append(CellProgress(cell, CellState.PENDING))
            continue
        rank, run_id = best[cell.digest]
        states.append(CellProgress(cell, list(CellState)[rank], run_id))
    return states


def count_states(states: list[CellProgress]) -> dict[CellState, int]:
    """How many cells are in each state, every state listed (in CellState's order)."""
    return {state: sum(s.state == state for s in states) for state in CellState}
