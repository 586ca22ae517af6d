"""Runs a study: prepare it once (``prepare``), let worker processes claim trials (``worker``), then
summarise and refit the best point on the whole training set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..config import RunConfig, apply, config_hash
from ..config.resolve import resolve
from ..keys import M, T
from ..tracking import Tracker
from .objective import ROLE_REFIT
from .parent import close_parent_run
from .prepare import StudyJob, StudyOptions, check_options, prepare_study, recover_stale
from .queue import is_done
from .space import SearchSpace, apply_params
from .storage import storage_lock
from .summary import best_trial, counts, update_parent
from .worker import run_workers

log = logging.getLogger(__name__)


@dataclass
class StudyReport:
    """How a ``run_study`` call ended."""

    job: StudyJob
    counts: dict[str, int]
    done: bool
    best: dict[str, Any] | None = None
    dead_workers: list[str] = field(default_factory=list)
    refit_test_acc: float | None = None
    refit_error: str = ""

    @property
    def exit_code(self) -> int:
        """1 when a dead worker left trials undone or the refit failed (a worker that died after every
        trial was done lost nothing: the study stands)."""
        return 1 if (self.dead_workers and not self.done) or self.refit_error else 0


def refit_best(job: StudyJob, study, tracker: Tracker) -> tuple[float | None, str]:
    """Retrain the best configuration on the whole noisy training set (no validation split);
    log its test accuracy in the study run. Returns (test accuracy, error text)."""
    from ..errors import RunFailed
    from ..train import train

    ctx = job.context
    best = best_trial(study.get_trials(deepcopy=False))
    if best is None:
        return None, "no COMPLETE trial to refit"
    cfg = apply_params(ctx.base, best.params)
    apply(cfg, "data.val_fraction", 0.0)
    apply(cfg, "tracking.run_name", f"{ctx.study_name}-refit")
    cfg = resolve(cfg)
    run_dir = ctx.study_dir / f"refit-{config_hash(cfg)}"
    try:
        result = train(cfg, tracker, run_dir=run_dir, parent_run_id=ctx.parent_run_id, progress=ctx.progress,
                       extra_tags={T.STUDY: ctx.study_name, T.STUDY_ROLE: ROLE_REFIT,
                                   T.TRIAL_NUMBER: str(best.number)})
    except RunFailed as err:  # a non-finite loss, an unreadable run file
        tracker.set_tags(ctx.parent_run_id, {T.REFIT_FAILURE_REASON: str(err)})
        return None, f"refit failed: {err}"
    accuracy = float(result.summary[M.TEST_ACC_LAST])
    tracker.log_metrics(ctx.parent_run_id, [(best.number, {M.REFIT_TEST_ACC: accuracy})])
    tracker.set_tags(ctx.parent_run_id, {T.REFIT_RUN_ID: str(result.run_id), T.REFIT_TRIAL: str(best.number),
                                         **{f"{T.REFIT_PARAM}{k}": str(v) for k, v in best.params.items()}})
    return accuracy, ""


def run_study(options: StudyOptions, tracker: Tracker | None = None,
              checked: tuple[SearchSpace, RunConfig, int | None] | None = None) -> StudyReport:
    """The whole ``aplab study`` command: prepare, run the workers, summarise, refit (``checked``: see
    ``prepare_study``)."""
    checked = checked or check_options(options)
    require_dataset(checked[1])
    job, study, tracker = prepare_study(options, tracker, checked)
    dead = run_workers(job, options.workers, tracker, options.gpus)
    return finish_study(job, study, tracker, options, dead)


def require_dataset(cfg: RunConfig) -> None:
    """The trials' dataset is here (or downloads): a missing one is one line before the study, its storage
    and its parent run exist, not a failure in every trial."""
    from ..data import load_dataset

    load_dataset(cfg.data.name, cfg.data.data_dir, download=cfg.data.download)


def finish_study(job: StudyJob, study, tracker: Tracker, options: StudyOptions, dead: list[str]) -> StudyReport:
    """After the workers: recover what dead ones left, update and close the parent run, refit when asked."""
    ctx = job.context
    if dead:
        with storage_lock(job.storage_url, ctx.study_name):
            recover_stale(study, ctx, tracker, job.stale_after_s)
    update_parent(study, ctx.space, tracker, ctx.parent_run_id, ctx.study_dir)
    done = is_done(study, ctx.space, job.n_trials)
    trials = study.get_trials(deepcopy=False)
    report = StudyReport(job, counts(trials), done, dead_workers=dead)
    best = best_trial(trials)
    if best is not None:
        report.best = {"trial": best.number, "value": best.value, "params": dict(best.params)}
    if options.refit and done:
        report.refit_test_acc, report.refit_error = refit_best(job, study, tracker)
    elif options.refit:
        log.warning("refit skipped: trials are still queued or running; run the command again with --refit")
    close_parent_run(tracker, ctx.parent_run_id, done, dead)
    return report


__all__ = ["StudyOptions", "StudyReport", "finish_study", "refit_best", "run_study"]
