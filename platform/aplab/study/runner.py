"""Runs a study: prepare it once, let worker processes claim trials, then summarise (and refit).

``prepare_study`` does every check before any trial exists (the space against the config, the
storage, the tracking store), then creates or finds again the study and its parent MLflow run
(``parent``), fails the trials of dead workers (their points are queued again) and queues the
grid's points (``queue``). Workers claim trials under a lock shared by every process of the storage:
processes of this host, or Slurm tasks (``executors.slurm_study``) on any node that reaches the storage.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply, config_hash
from ..config.resolve import resolve
from ..errors import ConfigError
from ..keys import M, T, run_label
from ..processes import cores_share
from ..workers.gpus import check_workers, use_only_gpu
from ..workers.slurm import use_slurm
from ..status import RunStatus, TrialStatus
from ..tracking import Tracker, default_uri, make_tracker
from .objective import OBJECTIVES, ROLE_REFIT, TrialContext, TrialOutcome, child_run_id, end_child, run_trial
from .parent import close_parent_run, ensure_parent_run
from .optuna_adapter import tell_unless_finished
from .queue import (ATTR_FAILURE_REASON, ATTR_MLFLOW_RUN_ID, ATTR_PRUNE_REASON, STALE_AFTER_S, Heartbeat, claim_trial,
                    enqueue_grid, fail_for_retry, is_done, mark_owner, stale_trials)
from .space import SearchSpace, apply_params, check_against_config
from .space_file import load_space
from .storage import default_storage, is_journal, open_storage, redact, storage_lock
from .summary import best_trial, counts, update_parent

log = logging.getLogger(__name__)

# Study user attributes: what the study was made with (checked on resume).
STUDY_ATTRS = ("aplab.base_hash", "aplab.space_digest", "aplab.objective")


@dataclass(frozen=True)
class StudyOptions:
    """The choices of one ``aplab study`` command."""

    space_path: str
    base: RunConfig
    study_name: str | None = None
    storage: str | None = None
    workers: int = 1
    gpus: tuple[str, ...] = ()  # each worker's CUDA_VISIBLE_DEVICES (aplab.workers.gpus.gpu_plan); () on CPU
    refit: bool = False
    objective: str = "last"
    n_trials: int | None = None
    progress: bool = True
    stale_after_s: float = STALE_AFTER_S


@dataclass(frozen=True)
class StudyJob:
    """A prepared study as every worker receives it (picklable, for spawned processes)."""

    context: TrialContext
    storage_url: str
    tracking_uri: str
    n_trials: int | None
    stale_after_s: float = STALE_AFTER_S


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


# ----------------------------------------------------------------------------- checks (before any trial)


def default_study_name(space: SearchSpace, cfg: RunConfig) -> str:
    """``<space>-<dataset>-<loss>-<noise>-s<seed>`` of the resolved base config."""
    return f"{space.name}-{run_label(cfg)}"


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", name)


def check_options(options: StudyOptions) -> tuple[SearchSpace, RunConfig, int | None]:
    """Every check that needs no storage: the space, the base config, the objective, the budget, workers.

    The arguments come first: their errors answer without importing Optuna or torch."""
    if options.n_trials is not None and (isinstance(options.n_trials, bool) or options.n_trials < 1):
        raise ConfigError("--n-trials", options.n_trials, "an integer >= 1")
    if isinstance(options.workers, bool) or not isinstance(options.workers, int) or options.workers < 1:
        raise ConfigError("--workers", options.workers, "an integer >= 1")
    if not Path(options.space_path).is_file():
        raise ConfigError("--space", options.space_path, "an existing search-space YAML file")
    space = load_space(options.space_path)
    OBJECTIVES.get(options.objective, field="--objective")
    base = options.base
    defaults = RunConfig().flat()
    for name in space.param_names:
        if base.flat()[name] != defaults[name]:
            raise ConfigError(name, base.flat()[name], f"unset: the space {space.source} searches {name}")
    resolved = resolve(base)
    if resolved.data.val_fraction <= 0:
        raise ConfigError("data.val_fraction", resolved.data.val_fraction,
                          "a number in (0, 1): a study chooses on validation accuracy, never on test accuracy")
    if resolved.tracking.offline:
        raise ConfigError("tracking.offline", True, "false: a study records every trial as a child MLflow run")
    check_against_config(space, base)
    if space.is_grid and options.n_trials is not None:
        raise ConfigError("--n-trials", options.n_trials,
                          f"unset: the grid {space.source} runs each of its {len(space.points())} points once")
    n_trials = None if space.is_grid else (options.n_trials or space.n_trials)
    if not space.is_grid and n_trials is None:
        raise ConfigError("--n-trials", n_trials, f"an integer >= 1 (the space {space.source} sets no n_trials)")
    check_workers(options.workers, options.gpus, str(resolved.tracking.uri or ""))
    return space, resolved, n_trials


# ----------------------------------------------------------------------------- the study


def open_study(job: StudyJob, storage=None):
    """Load the (existing) study with the space's sampler and pruner."""
    import optuna

    space = job.context.space
    return optuna.load_study(study_name=job.context.study_name, storage=storage or open_storage(job.storage_url),
                             sampler=space.make_sampler(), pruner=space.make_pruner())


def _check_identity(study, expected: dict[str, str]) -> None:
    """A study found again must have been made with the same base config, space and objective."""
    attrs = study.user_attrs
    for key, value in expected.items():
        if key in attrs and attrs[key] != value:
            what = key.split(".", 1)[1].replace("_", " ")
            raise ConfigError("--study-name", study.study_name,
                              f"a new name: this study exists with another {what} ({attrs[key]}, now {value}); "
                              "resume it with the same command or pass --study-name")
    for key, value in expected.items():
        if key not in attrs:
            study.set_user_attr(key, value)


def recover_stale(study, ctx: TrialContext, tracker: Tracker, stale_after_s: float) -> list[int]:
    """Fail the RUNNING trials of dead workers, queue their points again and close their child runs.

    Only the command whose FAIL lands queues the point (``fail_for_retry``), so two commands
    recovering at once do not both run it again. Call under the storage lock.
    """
    recovered = []
    for trial, reason in stale_trials(study, stale_after_s):
        if not fail_for_retry(study, trial, reason):
            continue
        end_child(tracker, child_run_id(tracker, ctx, trial.number), RunStatus.FAILED,
                  {T.TRIAL_STATE: TrialStatus.FAIL, T.FAILURE_REASON: reason})
        recovered.append(trial.number)
    return recovered


def prepare_study(options: StudyOptions, tracker: Tracker | None = None,
                  checked: tuple[SearchSpace, RunConfig, int | None] | None = None) -> tuple[StudyJob, Any, Tracker]:
    """Check everything (unless ``checked``, what ``check_options`` returned for these options), then create
    or resume the study, its parent run and its queue."""
    space, resolved, n_trials = checked or check_options(options)  # before Optuna: a bad argument answers fast
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage_url = options.storage or default_storage(default_uri(resolved.tracking.uri), resolved.tracking.workdir)
    if is_journal(storage_url):  # one spelling of the file, whatever the working directory
        storage_url = str(Path(storage_url).expanduser().resolve())
    tracker = tracker or make_tracker(resolved.tracking.uri)
    tracker.check()  # an unreachable tracking server fails here, like an unreachable storage below
    storage = open_storage(storage_url)
    name = options.study_name or default_study_name(space, resolved)
    experiment_dir = Path(resolved.tracking.workdir) / resolved.tracking.experiment
    study_dir = (experiment_dir / f"study-{_folder_name(name)}").resolve()
    context = TrialContext(name, options.base, space, options.objective, study_dir, None,
                           options.progress and options.workers == 1)
    with storage_lock(storage_url, name):
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                    sampler=space.make_sampler(), pruner=space.make_pruner())
        _check_identity(study, dict(zip(STUDY_ATTRS, (config_hash(resolved), space.digest(), options.objective))))
        parent = ensure_parent_run(study, context, tracker, storage_url, n_trials, options.space_path, resolved)
        context = replace(context, parent_run_id=parent)
        recovered = recover_stale(study, context, tracker, options.stale_after_s)
        queued = enqueue_grid(study, space)
    if recovered:
        log.warning("trials %s of dead workers marked FAILED; their points run again", recovered)
    job = StudyJob(context, storage_url, tracker.uri, n_trials, options.stale_after_s)
    log.info("study %s: %d points queued, storage %s, parent run %s", name, queued, redact(storage_url), parent)
    return job, study, tracker


# ----------------------------------------------------------------------------- workers


def _tell(study, trial, outcome: TrialOutcome) -> bool:
    """Record the outcome; False when another command failed the trial meanwhile (its heartbeat was late)."""
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        for key, value in outcome.attrs.items():
            if value is not None:
                trial.set_user_attr(key, value)
        if outcome.run_id:
            trial.set_user_attr(ATTR_MLFLOW_RUN_ID, outcome.run_id)
        if outcome.reason:
            trial.set_user_attr(ATTR_FAILURE_REASON if outcome.state == TrialStatus.FAIL else ATTR_PRUNE_REASON,
                                outcome.reason)
        told = tell_unless_finished(study, trial, outcome.value if outcome.state == TrialStatus.COMPLETE else None,
                                    outcome.state)
    except UpdateFinishedTrialError:  # a user attribute of a trial finished meanwhile
        told = False
    if not told:
        log.warning("trial %d was failed meanwhile as stale by another command; its result stays in its MLflow "
                    "run %s only", trial.number, outcome.run_id)
        return False
    return True


def _fail_crashed(job: StudyJob, study, trial, tracker: Tracker, err: BaseException) -> None:
    """A trial stopped by a crash or an interrupt: FAIL, and its point queued again (not the point's fault)."""
    ctx = job.context
    reason = f"{type(err).__name__}: {err}"[:500]
    try:
        with storage_lock(job.storage_url, ctx.study_name):
            fail_for_retry(study, trial, reason)
    except Exception:  # noqa: BLE001 - the next command's recovery handles what is left RUNNING
        pass
    end_child(tracker, child_run_id(tracker, ctx, trial.number), RunStatus.FAILED,
              {T.TRIAL_STATE: TrialStatus.FAIL, T.FAILURE_REASON: reason})


def _describe(trial, outcome: TrialOutcome) -> str:
    params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    value = f" val/acc {100 * outcome.value:.2f}%" if outcome.value is not None else ""
    why = f" ({outcome.reason})" if outcome.reason and outcome.state == TrialStatus.FAIL else ""
    return f"trial {trial.number} {outcome.state}{value}  {params}{why}"


def worker_loop(job: StudyJob, worker: int = 0, tracker: Tracker | None = None) -> int:
    """Claim and run trials until none is left; returns how many this worker ran."""
    ctx = job.context
    study = open_study(job)
    tracker = tracker or make_tracker(job.tracking_uri)
    ran = 0
    while True:
        with storage_lock(job.storage_url, ctx.study_name):
            trial = claim_trial(study, ctx.space, job.n_trials)
            if trial is not None:
                mark_owner(trial)
        if trial is None:
            return ran
        with Heartbeat(trial):
            try:
                outcome = run_trial(trial, ctx, tracker)
            except BaseException as err:
                _fail_crashed(job, study, trial, tracker, err)
                raise
        if not _tell(study, trial, outcome):
            continue
        ran += 1
        log.info("worker %d: %s", worker, _describe(trial, outcome))
        update_parent(study, ctx.space, tracker, ctx.parent_run_id, ctx.study_dir)


def _worker_process(job: StudyJob, worker: int, workers: int, gpu: str | None = None) -> None:
    """Entry point of a spawned worker process: its GPU first (before torch touches CUDA), then CPU threads
    shared out among the workers."""
    use_slurm()
    if gpu is not None:
        use_only_gpu(gpu)
    import optuna
    import torch

    torch.set_num_threads(cores_share(workers))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        worker_loop(job, worker)
    except KeyboardInterrupt:
        sys.exit(130)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def run_workers(job: StudyJob, workers: int, tracker: Tracker, gpus: tuple[str, ...] = ()) -> list[str]:
    """Run ``workers`` worker processes (spawned; worker i sees GPU ``gpus[i]`` when given) or, for one
    worker on the CPU, the loop in this process; returns the dead."""
    if workers == 1 and not gpus:
        worker_loop(job, 0, tracker)
        return []
    context = multiprocessing.get_context("spawn")  # never fork: the parent may have counted GPUs with CUDA
    processes = [context.Process(target=_worker_process, args=(job, i, workers, gpus[i] if gpus else None),
                                 name=f"aplab-study-{i}") for i in range(workers)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:  # the workers got the same SIGINT: they fail their trials as retryable
        for process in processes:
            process.join(timeout=60)
        raise
    return [f"worker {i} (pid {p.pid}) ended with {_exit_text(p.exitcode)}"
            for i, p in enumerate(processes) if p.exitcode != 0]


# ----------------------------------------------------------------------------- the end: summary and refit


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
    job, study, tracker = prepare_study(options, tracker, checked)
    dead = run_workers(job, options.workers, tracker, options.gpus)
    return finish_study(job, study, tracker, options, dead)


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


__all__ = ["StudyJob", "StudyOptions", "StudyReport", "check_options", "default_study_name", "finish_study",
           "open_study", "prepare_study", "recover_stale", "refit_best", "run_study", "run_workers", "worker_loop"]
