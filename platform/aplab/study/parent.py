"""The study's parent MLflow run: found again or created once, described, and closed by its trials."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..keys import T
from ..status import RunStatus
from ..tracking import Tracker
from .objective import ROLE_STUDY, TrialContext
from .space import SearchSpace
from .storage import redact

log = logging.getLogger(__name__)

ATTR_PARENT = "aplab.parent_run_id"  # study user attribute: the parent run's id


def _parent_params(base: RunConfig, space: SearchSpace) -> dict[str, Any]:
    searched = set(space.param_names)
    return {k: v for k, v in base.flat().items() if k not in searched and not k.startswith("tracking.")}


def experiment_description(ctx: TrialContext) -> str:
    """The text MLflow shows on the experiment page (``mlflow.note.content``)."""
    return (f"aplab studies (`aplab study`): each study is one parent run tagged {T.STUDY_ROLE}={ROLE_STUDY} "
            f"(its trials table and, for a 2-parameter grid, the validation-accuracy heat-map under study/), "
            f"with one child run per Optuna trial; trials are chosen on validation accuracy, never test accuracy. "
            f"Last created by study `{ctx.study_name}` ({ctx.space.source}).")


def ensure_parent_run(study, ctx: TrialContext, tracker: Tracker, storage_url: str, n_trials: int | None,
                      space_path: str, resolved: RunConfig) -> str:
    """The study's MLflow run: the one recorded in the study (or found by tag), else a new one whose
    params are the resolved base config (less the searched fields)."""
    experiment = ctx.base.tracking.experiment
    tags = {T.STUDY: ctx.study_name, T.STUDY_ROLE: ROLE_STUDY, T.STUDY_STORAGE: redact(storage_url)}
    found = {r.run_id: r for r in tracker.find_runs(experiment, tags)}
    known = study.user_attrs.get(ATTR_PARENT)
    record = found.get(known) if known else None
    if record is None and found:
        record = next(iter(found.values()))
    if record is not None:
        if record.status != RunStatus.RUNNING:
            tracker.resume_run(record.run_id)
        run_id = record.run_id
    else:
        space = ctx.space
        run_id = tracker.start_run(experiment, f"study-{ctx.study_name}", {
            **tags, T.OPTUNA_STUDY: ctx.study_name, T.STUDY_SPACE: space.name, T.STUDY_OBJECTIVE: ctx.objective,
            T.STUDY_SAMPLER: json.dumps(space.sampler) if not space.is_grid else "grid (enqueued points)",
            T.STUDY_PRUNER: json.dumps(space.pruner), T.STUDY_PARAMS: ",".join(space.param_names)})
        tracker.log_params(run_id, _parent_params(resolved, space))
        tracker.log_artifact(run_id, Path(space_path), "study")
        tracker.describe_experiment(experiment, experiment_description(ctx))
    tracker.set_tags(run_id, {T.STUDY_N_TRIALS: str(n_trials if n_trials is not None else len(ctx.space.points()))})
    if known != run_id:
        study.set_user_attr(ATTR_PARENT, run_id)
    return run_id


def close_parent_run(tracker: Tracker, run_id: str, done: bool, dead_workers: list[str]) -> RunStatus | None:
    """End the parent run by its trials: FINISHED when every trial is done (whatever happened to a
    worker after), FAILED when a dead worker left trials undone, else left RUNNING (other commands
    may still be running trials). Returns the status set, or None."""
    if done:
        tracker.end_run(run_id, RunStatus.FINISHED)
        return RunStatus.FINISHED
    if dead_workers:
        tracker.set_tags(run_id, {T.STUDY_INCOMPLETE: "; ".join(dead_workers)})
        tracker.end_run(run_id, RunStatus.FAILED)
        return RunStatus.FAILED
    return None


__all__ = ["ATTR_PARENT", "close_parent_run", "ensure_parent_run", "experiment_description"]
