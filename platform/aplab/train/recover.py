"""A run folder that lost its state.json (deleted, or unreadable) while the store holds its finished run: the
state is rebuilt from the store, so the same command skips the run instead of training a second FINISHED one."""

from __future__ import annotations

import logging
from pathlib import Path

from ..keys import T
from ..status import RunStatus
from ..tracking import RunRecord
from .artifacts import ARTIFACTS, is_summary_metric
from .context import RunContext
from .identity import run_name
from .recorder import SENTINEL_METRIC, STATE_FILE, RunRecorder
from .resume import CHECKPOINT
from .state import RunState

log = logging.getLogger(__name__)


def started_here(run_dir: Path) -> bool:
    """Whether a run began in this folder (its start files or a checkpoint are there), state.json or not."""
    return (run_dir / ARTIFACTS / "config.yaml").exists() or (run_dir / CHECKPOINT).exists()


def finished_in_store(ctx: RunContext, parent_run_id: str | None) -> RunRecord | None:
    """The store's FINISHED run of this config under the same parent (None for a top-level run), if any."""
    if ctx.tracker is None:
        return None
    for record in ctx.tracker.find_runs(ctx.cfg.tracking.experiment, {T.CONFIG_HASH: ctx.digest}):
        if record.status == RunStatus.FINISHED and record.tags.get(T.PARENT_RUN_ID) == parent_run_id:
            return record
    return None


def state_from_store(ctx: RunContext, record: RunRecord, parent_run_id: str | None) -> RunState:
    """A FINISHED run's state.json from what the store holds: its tags, params, every epoch and its summary."""
    assert ctx.tracker is not None
    steps = [step for step, _ in ctx.tracker.metric_history(record.run_id, SENTINEL_METRIC)]
    rows: dict[int, dict[str, float]] = {step: {"epoch": step} for step in steps}
    summary: dict[str, float] = {}
    for key in record.metrics:
        if key.startswith("system/"):
            continue
        if is_summary_metric(key):
            summary[key] = record.metrics[key]
            continue
        for step, value in ctx.tracker.metric_history(record.run_id, key):
            if step in rows:
                rows[step][key] = value
    history = [rows[step] for step in sorted(rows)]
    return RunState(
        config_hash=ctx.digest, experiment=ctx.cfg.tracking.experiment,
        run_name=record.tags.get(T.RUN_NAME) or ctx.cfg.tracking.run_name or run_name(ctx.cfg),
        tags={k: v for k, v in record.tags.items() if not k.startswith("mlflow.")}, params=dict(record.params),
        tracking_uri=ctx.uri, parent_run_id=parent_run_id, run_id=record.run_id, status=RunStatus.FINISHED,
        history=history, synced_step=history[-1]["epoch"] if history else 0, summary=summary,
        artifacts_synced=True, end_synced=True)


def recover_finished(ctx: RunContext, parent_run_id: str | None, problem: str) -> RunRecorder | None:
    """The rebuilt recorder of the store's FINISHED run of this config, saved as state.json (None: no such run)."""
    record = finished_in_store(ctx, parent_run_id)
    if record is None:
        return None
    recorder = RunRecorder(ctx.run_dir, ctx.tracker, state_from_store(ctx, record, parent_run_id))
    recorder.save()
    log.warning("%s %s; the store holds this config's FINISHED run %s: %s rebuilt from it, nothing to train",
                ctx.run_dir / STATE_FILE, problem, record.run_id, STATE_FILE)
    return recorder


__all__ = ["recover_finished", "started_here"]
