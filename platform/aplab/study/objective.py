"""One trial: the space's values over the base config -> one child MLflow run -> the objective.

Validation accuracy chooses (never test accuracy). Each epoch's objective goes to the pruner; a
pruned trial ends its run as KILLED with a tag, a non-finite loss ends it FAILED with the reason
(``aplab.train`` records it), and the study goes on in both cases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply, config_hash
from ..keys import M, T
from ..config.resolve import resolve
from ..registry import Registry
from ..status import RunStatus, TrialStatus
from ..tracking import Tracker
from .queue import ATTR_PRUNED_AT_EPOCH, ATTR_RUN_DIR, ATTR_TEST_ACC_LAST
from .space import SearchSpace, apply_params

log = logging.getLogger(__name__)

ROLE_STUDY, ROLE_TRIAL, ROLE_REFIT = "study", "trial", "refit"  # values of T.STUDY_ROLE

History = list[dict[str, float]]

#: What a trial's value is (Optuna's name of the objective): validation accuracy, never test accuracy.
OBJECTIVE_METRIC = M.VAL_ACC

#: How a trial's per-epoch metrics become its value; only validation accuracy is ever read.
OBJECTIVES: Registry[Callable[[History], float]] = Registry("--objective")
OBJECTIVES.register("last", lambda history: float(history[-1][M.VAL_ACC]))
OBJECTIVES.register("best", lambda history: float(max(row[M.VAL_ACC] for row in history)))


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one study shares; picklable, so worker processes receive it whole."""

    study_name: str
    base: RunConfig
    space: SearchSpace
    objective: str
    study_dir: Path
    parent_run_id: str | None
    progress: bool = False


@dataclass
class TrialOutcome:
    """How a trial ended: an Optuna state name, its value, its MLflow run and a reason when not COMPLETE."""

    state: TrialStatus  # COMPLETE, PRUNED or FAIL
    value: float | None
    run_id: str | None
    reason: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


class EpochReporter:
    """The ``on_epoch`` hook: report the objective so far to Optuna, stop the run when the pruner says so."""

    def __init__(self, trial, objective: str):
        self.trial = trial
        self.objective = OBJECTIVES.get(objective, field="--objective")
        self.history: History = []
        self.last_epoch = 0
        self.last_value: float | None = None

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        import optuna

        self.history.append(metrics)
        self.last_epoch, self.last_value = epoch, self.objective(self.history)
        self.trial.report(self.last_value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (val/acc {self.last_value:.4f} below the median)")


def trial_config(ctx: TrialContext, params: dict[str, Any], number: int) -> RunConfig:
    """The base config with the trial's values, named after the study and the trial."""
    cfg = apply_params(ctx.base, params)
    apply(cfg, "tracking.run_name", f"{ctx.study_name}-t{number}")
    return cfg


def trial_tags(ctx: TrialContext, number: int) -> dict[str, str]:
    return {T.STUDY: ctx.study_name, T.STUDY_ROLE: ROLE_TRIAL, T.TRIAL_NUMBER: str(number),
            T.TRIAL_STATE: TrialStatus.RUNNING}


def child_run_id(tracker: Tracker, ctx: TrialContext, number: int) -> str | None:
    """The MLflow run of trial ``number`` (found by its tags), or None when it was never created."""
    found = tracker.find_runs(ctx.base.tracking.experiment,
                              {T.STUDY: ctx.study_name, T.STUDY_ROLE: ROLE_TRIAL, T.TRIAL_NUMBER: str(number)})
    return found[0].run_id if found else None


def end_child(tracker: Tracker, run_id: str | None, status: RunStatus | None, tags: dict[str, str]) -> None:
    """Tag a child run and, given a ``status``, close it (best effort: the study must not stop for a tracking
    hiccup)."""
    if run_id is None:
        return
    try:
        tracker.set_tags(run_id, tags)
        if status:
            tracker.end_run(run_id, status)
    except Exception as err:  # noqa: BLE001 - an outage is reported, not fatal
        log.warning("could not update run %s (%s: %s)", run_id, type(err).__name__, err)


@dataclass
class PreparedTrial:
    """A trial's resolved config, run folder, pruning reporter and the attributes it will carry."""

    trial: Any
    cfg: RunConfig
    run_dir: Path
    reporter: EpochReporter
    attrs: dict[str, Any]


def prepare_trial(trial, ctx: TrialContext) -> PreparedTrial:
    """The space's values suggested for ``trial`` over the base config, resolved once (train() takes it as is)."""
    params = {spec.name: spec.suggest(trial) for spec in ctx.space.params}
    cfg = resolve(trial_config(ctx, params, trial.number))
    run_dir = ctx.study_dir / f"trial-{trial.number:04d}-{config_hash(cfg)}"
    log.info("trial %d starts: %s", trial.number, ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()))
    return PreparedTrial(trial, cfg, run_dir, EpochReporter(trial, ctx.objective), {ATTR_RUN_DIR: str(run_dir)})


def run_trial(trial, ctx: TrialContext, tracker: Tracker) -> TrialOutcome:
    """Train the trial's config as a child of the study run and say how it ended.

    Exceptions other than pruning and a failed run (RunFailed) propagate: the worker fails the trial
    as retryable (a crash is not the point's fault) and stops.
    """
    from ..train import train

    prepared = prepare_trial(trial, ctx)
    try:
        result = train(prepared.cfg, tracker, run_dir=prepared.run_dir, parent_run_id=ctx.parent_run_id,
                       extra_tags=trial_tags(ctx, trial.number), progress=ctx.progress, on_epoch=prepared.reporter)
    except Exception as err:
        return trial_outcome(prepared, ctx, tracker, err)
    return trial_outcome(prepared, ctx, tracker, result)


def run_trials(trials: list, ctx: TrialContext, tracker: Tracker) -> list[TrialOutcome | BaseException]:
    """Train the trials as one stack (``train.stack``), each its own child run; each trial's outcome, or the
    exception that crashed it (the worker fails that trial as retryable)."""
    from ..train import train_stack

    prepared = [prepare_trial(trial, ctx) for trial in trials]
    results = train_stack([p.cfg for p in prepared], tracker, progress=ctx.progress,
                          run_dirs=[p.run_dir for p in prepared], parent_run_ids=[ctx.parent_run_id] * len(trials),
                          extra_tags=[trial_tags(ctx, p.trial.number) for p in prepared],
                          on_epoch=[p.reporter for p in prepared])
    outcomes: list[TrialOutcome | BaseException] = []
    for p, result in zip(prepared, results):
        try:
            outcomes.append(trial_outcome(p, ctx, tracker, result))
        except Exception as err:  # a crash: not the point's fault
            outcomes.append(err)
    return outcomes


def trial_outcome(prepared: PreparedTrial, ctx: TrialContext, tracker: Tracker, result) -> TrialOutcome:
    """How a trial ended, from its run's result or the exception that stopped it (pruned, failed); another
    exception is raised again."""
    import optuna

    from ..errors import RunFailed
    from ..train.resume import CHECKPOINT

    trial, reporter, attrs, run_dir = prepared.trial, prepared.reporter, prepared.attrs, prepared.run_dir
    if isinstance(result, optuna.TrialPruned):
        run_id = child_run_id(tracker, ctx, trial.number)
        end_child(tracker, run_id, RunStatus.KILLED, {T.TRIAL_STATE: TrialStatus.PRUNED, T.PRUNED: "true",
                                                      T.PRUNED_AT_EPOCH: str(reporter.last_epoch),
                                                      T.PRUNE_REASON: str(result)})
        (run_dir / CHECKPOINT).unlink(missing_ok=True)  # never resumed: a pruned trial is final
        return TrialOutcome(TrialStatus.PRUNED, reporter.last_value, run_id, str(result),
                            {**attrs, ATTR_PRUNED_AT_EPOCH: reporter.last_epoch})
    if isinstance(result, RunFailed):  # a non-finite loss, an unreadable run file
        run_id = child_run_id(tracker, ctx, trial.number)  # aplab.train ended it FAILED with failure_reason
        end_child(tracker, run_id, None, {T.TRIAL_STATE: TrialStatus.FAIL})
        return TrialOutcome(TrialStatus.FAIL, None, run_id, f"run failed: {result}", attrs)
    if isinstance(result, BaseException):
        raise result
    if not result.history or M.VAL_ACC not in result.history[-1] or M.VAL_ACC_LAST not in result.summary:
        end_child(tracker, result.run_id, None, {T.TRIAL_STATE: TrialStatus.FAIL})
        return TrialOutcome(TrialStatus.FAIL, None, result.run_id, f"run in {run_dir} ended {result.status} without "
                            "validation accuracy", attrs)
    value = OBJECTIVES.get(ctx.objective, field="--objective")(result.history)
    attrs[ATTR_TEST_ACC_LAST] = result.summary.get(M.TEST_ACC_LAST)  # shown in the table, never used to choose
    end_child(tracker, result.run_id, None, {T.TRIAL_STATE: TrialStatus.COMPLETE, T.TRIAL_VALUE: f"{value:.6g}"})
    return TrialOutcome(TrialStatus.COMPLETE, value, result.run_id, "", attrs)


__all__ = ["OBJECTIVES", "ROLE_REFIT", "ROLE_STUDY", "ROLE_TRIAL", "EpochReporter", "TrialContext", "TrialOutcome",
           "child_run_id", "end_child", "run_trial", "run_trials", "trial_config", "trial_tags"]
