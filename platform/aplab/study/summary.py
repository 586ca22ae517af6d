"""What the study's parent run shows: the trials table (CSV), the best parameters, the grid heat-map.

Rebuilt from the Optuna storage (the one source of truth) after every finished trial, by whichever
worker finished it; the coordinator writes the final version.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Any

from ..plotting.figure import plot_grid_heatmap
from ..tracking import Tracker
from .queue import ATTR_FAILURE_REASON, point_of, retried
from .space import SearchSpace

log = logging.getLogger(__name__)

TABLE_ARTIFACT = "study"
TABLE_FILE = "trials.csv"
HEATMAP_FILE = "heatmap_val_acc.png"


def state_name(trial, again: dict[int, str]) -> str:
    """Optuna's state name; a FAIL that another trial runs again (``again``, from ``queue.retried``: a
    dead worker, a crash) reads ``FAIL_RETRIED``."""
    name = trial.state.name
    return "FAIL_RETRIED" if name == "FAIL" and trial.number in again else name


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
            "test_acc_last": t.user_attrs.get("test_acc_last"), "pruned_at_epoch": t.user_attrs.get("pruned_at_epoch"),
            "duration_s": round(duration, 1) if duration is not None else None,
            "reason": t.user_attrs.get(ATTR_FAILURE_REASON) or t.user_attrs.get("prune_reason")
            or again.get(t.number, ""),
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
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
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None
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
        if t.state.name == "COMPLETE":
            cells[key] = t.value
        elif key not in cells:
            notes[key] = {"PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "queued"}.get(
                state_name(t, again), notes.get(key, ""))
    return plot_grid_heatmap(cells, rows_spec.choices, cols_spec.choices, rows_spec.name, cols_spec.name, path,
                             title, notes)


def _replace(path: Path, write) -> Path:
    """Write through a private temporary file, then rename: readers never see half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    write(temporary)
    os.replace(temporary, path)
    return path


def update_parent(study, space: SearchSpace, tracker: Tracker, parent_run_id: str, folder: Path) -> None:
    """Write the trials table and heat-map into ``folder``; push them, the counts and the best
    parameters to the study run (best effort: a tracking hiccup must not stop the study)."""
    try:
        trials = study.get_trials(deepcopy=False)  # one read of the storage for the whole update
        found = counts(trials)
        best = best_trial(trials)
        done = sum(found.get(k, 0) for k in ("COMPLETE", "PRUNED", "FAIL"))
        metrics = {f"study/trials_{k.lower()}": float(found.get(k, 0)) for k in ("COMPLETE", "PRUNED", "FAIL")}
        tags: dict[str, str] = {"study.trials": str(len(trials))}
        if best is not None:
            metrics["study/best_val_acc"] = float(best.value)
            tags.update({"best.trial": str(best.number), "best.val_acc": f"{best.value:.6g}",
                         **{f"best.{k}": str(v) for k, v in best.params.items()}})
        tracker.log_metrics(parent_run_id, [(done, metrics)])
        tracker.set_tags(parent_run_id, tags)
        folder.mkdir(parents=True, exist_ok=True)
        rows = trials_table(trials, space)
        tracker.log_artifact(parent_run_id, _replace(folder / TABLE_FILE, lambda p: write_table(rows, p)),
                             TABLE_ARTIFACT)
        if space.is_grid and len(space.params) == 2:
            title = f"{study.study_name}: validation accuracy (%)"
            heatmap = _replace(folder / HEATMAP_FILE, lambda p: plot_study_grid(trials, space, p, title))
            tracker.log_artifact(parent_run_id, heatmap, TABLE_ARTIFACT)
    except Exception as err:  # noqa: BLE001 - reported, and the next update sends it all again
        log.warning("could not update the study run %s (%s: %s)", parent_run_id, type(err).__name__, err)


__all__ = ["best_trial", "counts", "plot_study_grid", "state_name", "trials_table", "update_parent", "write_table"]
