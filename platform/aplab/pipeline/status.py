"""Where a pipeline stands, read from the tracking store whatever executed its cells (here, other hosts, Slurm).

A cell is FINISHED when a run with its config hash finished, RUNNING when one is running (or scheduled),
FAILED when its runs all ended FAILED or KILLED (the next ``aplab pipeline run`` retries or resumes it), and
PENDING when the store has no run of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..keys import T
from ..tracking import Tracker
from .spec import Cell

CELL_STATES = ("FINISHED", "RUNNING", "FAILED", "PENDING")
_RANK = {"FINISHED": 0, "RUNNING": 1, "SCHEDULED": 1, "FAILED": 2, "KILLED": 2}


@dataclass(frozen=True)
class CellState:
    """One cell's standing in the store, and the run that says so (None when PENDING)."""

    cell: Cell
    state: str
    run_id: str | None = None


def cell_states(tracker: Tracker, cells: list[Cell]) -> list[CellState]:
    """Each cell's state (in matrix order) from its runs in the store, the most advanced one deciding."""
    if not cells:
        return []
    experiment = cells[0].config.tracking.experiment
    best: dict[str, tuple[int, str]] = {}
    for run in tracker.find_runs(experiment):
        digest = run.tags.get(T.CONFIG_HASH)
        rank = _RANK.get(run.status)
        if digest is None or rank is None:
            continue
        if digest not in best or rank < best[digest][0]:
            best[digest] = (rank, run.run_id)
    states = []
    for cell in cells:
        if cell.digest not in best:
            states.append(CellState(cell, "PENDING"))
            continue
        rank, run_id = best[cell.digest]
        states.append(CellState(cell, CELL_STATES[rank], run_id))
    return states


def count_states(states: list[CellState]) -> dict[str, int]:
    return {name: sum(s.state == name for s in states) for name in CELL_STATES}
