"""What the study's parent run shows: the trials table (CSV), the best parameters, the grid heat-map.

Rebuilt from the Optuna storage (the one source of truth) after every finished trial, by whichever
worker finished it; the coordinator writes the final version.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..keys import M, T
from ..plotting.figure import plot_grid_heatmap
from ..status import TRIAL_ENDS, TrialStatus
from ..tracking import Tracker
from .queue import (ATTR_FAILURE_REASON, ATTR_MLFLOW_RUN_ID, ATTR_PRUNE_REASON, ATTR_PRUNED_AT_EPOCH,
                    ATTR_TEST_ACC_LAST, point_of, retried)
from .space import SearchSpace

log = logging.getLogger(__name__)

TABLE_ARTIFACT = "study"
TABLE_FILE = "trials.csv"
HEATMAP_FILE = "heatmap_val_acc.png"
#: What a heat-map cell without a COMPLETE trial says (a retried FAIL says nothing: its replacement will).
CELL_NOTES = {TrialStatus.PRUNED: "pruned", TrialStatus.FAIL: "failed", TrialStatus.RUNNING: "running",
              TrialStatus.WAITING: "queued"}


def state_name(trial, again: dict[int, str]) -> TrialStatus:
    """Optuna's state name; a FAIL that another trial runs again (``again``, from ``queue.retried``: a
    dead worker, a crash) reads ``FAIL_RETRIED``."""
    name = TrialStatus(trial.state.name)
    return TrialStatus.FAIL_RETRIED if name == TrialStatus.FAIL and trial.number in again else name


def trials_table(trials: list, space: SearchSpace) -> list[dict[str, Any]]:
    """One row per trial (``study.get_trials()``): number, state, objective (val/acc), parameters, and where
    to look further."""
    rows = []
    again = retried(trials)
    for t in trials:
        params = point_of(t)
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({
            "number": t.number, "state": state_name(t, again), "val_acc": t.value,
            **{name: params.get(name) for name in space.param_names},
            "test_acc_last": t.user_attrs.get(ATTR_TEST_ACC_LAST),
            "pruned_at_epoch": t.user_attrs.get(ATTR_PRUNED_AT_EPOCH),
            "duration_s": round(duration, 1) if duration is not None else None,
            "reason": t.user_attrs.get(ATTR_FAILURE_REASON) or t.user_attrs.get(ATTR_PRUNE_REASON)
            or again.get(t.number, ""),
            "mlflow_run_id": t.user_attrs.get(ATTR_MLFLOW_RUN_ID),
        })
    return rows


def write_table(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def best_trial(trials: list):
    """The COMPLETE trial with the highest value (the earliest among ties), or None."""
    complete = [t for t in trials if t.state.name == TrialStatus.COMPLETE and t.value is not None
                and math.isfinite(t.value)]
    return max(complete, key=lambda t: (t.value, -t.number), default=None)


def counts(trials: list) -> dict[str, int]:
    """How many trials are in each state (FAIL_RETRIED apart from FAIL)."""
    found: dict[str, int] = {}
    again = retried(trials)
    for t in trials:
        name = state_name(t, again)
        found[name] = found.get(name, 0) + 1
    return found


def plot_study_grid(trials: list, space: SearchSpace, path: Path, title: str) -> Path | None:
    """The heat-map of a 2-parameter grid (first parameter down, second across); None for other spaces."""
    if not space.is_grid or len(space.params) != 2:
        return None
    rows_spec, cols_spec = space.params
    cells: dict[tuple[object, object], float | None] = {}
    notes: dict[tuple[object, object], str] = {}
    again = retried(trials)
    for t in trials:
        params = point_of(t)
        key = (params.get(rows_spec.name), params.get(cols_spec.name))
        if t.state.name == TrialStatus.COMPLETE:
            cells[key] = t.value
        elif key not in cells:
            notes[key] = CELL_NOTES.get(state_name(t, again), notes.get(key, ""))
    return plot_grid_heatmap(cells, rows_spec.choices, cols_spec.choices, rows_spec.name, cols_spec.name, path,
                             title, notes)


def update_parent(study, space: SearchSpace, tracker: Tracker, parent_run_id: str, folder: Path) -> None:
    """Write the trials table and heat-map into ``folder``; push them, the counts and the best
    parameters to the study run (best effort: a tracking hiccup must not stop the study)."""
    try:
        trials = study.get_trials(deepcopy=False)  # one read of the storage for the whole update
        found = counts(trials)
        best = best_trial(trials)
        done = sum(found.get(k, 0) for k in TRIAL_ENDS)
        metrics = {M.study_trials(k): float(found.get(k, 0)) for k in TRIAL_ENDS}
        tags: dict[str, str] = {T.STUDY_TRIALS: str(len(trials))}
        if best is not None:
            metrics[M.STUDY_BEST_VAL_ACC] = float(best.value)
            tags.update({T.BEST_TRIAL: str(best.number), T.BEST_VAL_ACC: f"{best.value:.6g}",
                         **{f"{T.BEST_PARAM}{k}": str(v) for k, v in best.params.items()}})
        tracker.log_metrics(parent_run_id, [(done, metrics)])
        tracker.set_tags(parent_run_id, tags)
        folder.mkdir(parents=True, exist_ok=True)
        rows = trials_table(trials, space)
        tracker.log_artifact(parent_run_id, atomic_write(folder / TABLE_FILE, lambda p: write_table(rows, p)),
                             TABLE_ARTIFACT)
        if space.is_grid and len(space.params) == 2:
            title = f"{study.study_name}: validation accuracy (%)"
            heatmap = atomic_write(folder / HEATMAP_FILE, lambda p: plot_study_grid(trials, space, p, title))
            tracker.log_artifact(parent_run_id, heatmap, TABLE_ARTIFACT)
    except Exception as err:  # noqa: BLE001 - reported, and the next update sends it all again
        log.warning("could not update the study run %s (%s: %s)", parent_run_id, type(err).__name__, err)


__all__ = ["best_trial", "counts", "plot_study_grid", "state_name", "trials_table", "update_parent", "write_table"]
