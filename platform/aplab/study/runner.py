"""Runs a study: prepare it once, let worker processes claim trials, then summarise (and refit).

``prepare_study`` does every check before any trial exists (the space against the config, the
storage, the tracking store), then creates or finds again the study and its parent MLflow run,
fails the trials of dead workers (their points are queued again) and queues the grid's points.
Workers claim a queued trial atomically (WAITING -> RUNNING) or, for a sampled space, create one
while the budget allows; a claim happens under a lock shared by the processes of one host.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply, config_hash
from ..resolution import resolve
from ..errors import ConfigError
from ..tracking import Tracker, default_uri, make_tracker
from .objective import (ATTR_HEARTBEAT, ATTR_HOST, ATTR_PID, ATTR_PID_START, ATTR_RETRY, OBJECTIVES, TAG_ROLE,
                        TAG_STATE, TAG_STUDY, TAG_TRIAL, TrialContext, TrialOutcome, child_run_id, end_child,
                        run_trial)
from .space import SearchSpace, apply_params, check_against_config, load_space
from .storage import default_storage, is_journal, open_storage, redact, storage_lock
from .summary import best_trial, counts, state_name, update_parent

HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0  # a RUNNING trial of another host without a heartbeat for this long is stale
# Study user attributes: what the study was made with (checked on resume) and its MLflow run.
STUDY_ATTRS = ("aplab.base_hash", "aplab.space_digest", "aplab.objective")
ATTR_PARENT = "aplab.parent_run_id"


@dataclass(frozen=True)
class StudyOptions:
    """The choices of one ``aplab study`` command."""

    space_path: str
    base: RunConfig
    study_name: str | None = None
    storage: str | None = None
    workers: int = 1
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
        return 1 if self.dead_workers or self.refit_error else 0


# ----------------------------------------------------------------------------- checks (before any trial)


def default_study_name(space: SearchSpace, cfg: RunConfig) -> str:
    """``<space>-<dataset>-<loss>-<noise>-s<seed>`` of the resolved base config."""
    return f"{space.name}-{cfg.data.name}-{cfg.loss.name}-{cfg.noise.spec}-s{cfg.runtime.seed}"


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", name)


def check_options(options: StudyOptions) -> tuple[SearchSpace, RunConfig, int | None]:
    """Every check that needs no storage: the space, the base config, the objective, the budget, workers."""
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
    if not space.is_grid and (n_trials is None or n_trials < 1):
        raise ConfigError("--n-trials", n_trials, f"an integer >= 1 (the space {space.source} sets no n_trials)")
    if isinstance(options.workers, bool) or not isinstance(options.workers, int) or options.workers < 1:
        raise ConfigError("--workers", options.workers, "an integer >= 1")
    if options.workers > 1 and str(resolved.tracking.uri or "").startswith("memory://"):
        raise ConfigError("--workers", options.workers, "1 with --tracking-uri memory:// (not shared by processes)")
    return space, resolved, n_trials


# ----------------------------------------------------------------------------- the study and its parent run


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


def _parent_params(base: RunConfig, space: SearchSpace) -> dict[str, Any]:
    searched = set(space.param_names)
    return {k: v for k, v in base.flat().items() if k not in searched and not k.startswith("tracking.")}


def ensure_parent_run(study, ctx: TrialContext, tracker: Tracker, storage_url: str, n_trials: int | None,
                      space_path: str, resolved: RunConfig) -> str:
    """The study's MLflow run: the one recorded in the study (or found by tag), else a new one whose
    params are the resolved base config (less the searched fields)."""
    experiment = ctx.base.tracking.experiment
    tags = {TAG_STUDY: ctx.study_name, TAG_ROLE: "study", "optuna.storage": redact(storage_url)}
    found = {r.run_id: r for r in tracker.find_runs(experiment, tags)}
    known = study.user_attrs.get(ATTR_PARENT)
    record = found.get(known) if known else None
    if record is None and found:
        record = next(iter(found.values()))
    if record is not None:
        if record.status != "RUNNING":
            tracker.resume_run(record.run_id)
        run_id = record.run_id
    else:
        space = ctx.space
        run_id = tracker.start_run(experiment, f"study-{ctx.study_name}", {
            **tags, "optuna.study": ctx.study_name, "study.space": space.name, "study.objective": ctx.objective,
            "study.sampler": json.dumps(space.sampler) if not space.is_grid else "grid (enqueued points)",
            "study.pruner": json.dumps(space.pruner), "study.params": ",".join(space.param_names)})
        tracker.log_params(run_id, _parent_params(resolved, space))
        tracker.log_artifact(run_id, Path(space_path), "study")
    tracker.set_tags(run_id, {"study.n_trials": str(n_trials if n_trials is not None else len(ctx.space.points()))})
    if known != run_id:
        study.set_user_attr(ATTR_PARENT, run_id)
    return run_id


# ----------------------------------------------------------------------------- trials: queue, claim, recover


def _storage(study):
    return study._storage  # the storage object the study itself uses (Optuna wraps RDB in a cache)


def _params_of(trial) -> dict[str, Any]:
    return trial.system_attrs.get("fixed_params", trial.params)


def _same_point(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if not (math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0) if numbers else x == y):
            return False
    return True


def _is_retry(trial) -> bool:
    return trial.state.name == "FAIL" and ATTR_RETRY in trial.system_attrs


def enqueue_grid(study, space: SearchSpace) -> int:
    """Queue every grid point that no trial covers; returns how many were queued.

    A fresh point is enqueued with ``skip_if_exists=True``; a point whose only trials are FAILs
    marked for retry (a dead worker, a crash) is enqueued again explicitly. Call under the lock.
    """
    if not space.is_grid:
        return 0
    trials = study.get_trials(deepcopy=False)
    covered = [_params_of(t) for t in trials if not _is_retry(t)]
    queued = 0
    for point in space.points():
        if any(_same_point(point, p) for p in covered):
            continue
        retried = any(_same_point(point, _params_of(t)) for t in trials)
        study.enqueue_trial(point, skip_if_exists=not retried)
        queued += 1
    return queued


def budget_used(study) -> int:
    """Trials that count against ``n_trials``: all but the FAILs that are to be run again."""
    return sum(not _is_retry(t) for t in study.get_trials(deepcopy=False))


def claim_trial(study, space: SearchSpace, n_trials: int | None) -> int | None:
    """A trial id for this worker: a queued trial (atomic WAITING -> RUNNING), else a new one while the
    budget allows (sampled spaces only); None when there is nothing left. Call under the lock."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = _storage(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                return trial._trial_id
        except UpdateFinishedTrialError:
            continue
    if space.is_grid or n_trials is None or budget_used(study) >= n_trials:
        return None
    return storage.create_new_trial(study._study_id)


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except psutil.Error:
        return None


def mark_owner(storage, trial_id: int) -> None:
    """Record which process runs the trial, so a later command can tell when it died."""
    for key, value in ((ATTR_HOST, socket.gethostname()), (ATTR_PID, os.getpid()),
                       (ATTR_PID_START, _process_start(os.getpid())), (ATTR_HEARTBEAT, time.time())):
        storage.set_trial_system_attr(trial_id, key, value)


def stale_reason(trial, stale_after_s: float, now: float | None = None) -> str | None:
    """Why a RUNNING trial's worker is dead, or None when it may be alive.

    On this host the recorded process is checked (gone, a zombie, or its pid reused); a trial of
    another host is stale when its heartbeat is older than ``stale_after_s``.
    """
    attrs = trial.system_attrs
    host, pid = attrs.get(ATTR_HOST), attrs.get(ATTR_PID)
    if host == socket.gethostname() and pid is not None:
        started, recorded = _process_start(int(pid)), attrs.get(ATTR_PID_START)
        if started is not None and (recorded is None or abs(started - recorded) < 0.01):
            return None  # alive (and, when its start time was recorded, the very same process)
        return f"worker {host}:{pid} died while running trial {trial.number}"
    beat = attrs.get(ATTR_HEARTBEAT) or (trial.datetime_start.timestamp() if trial.datetime_start else None)
    age = (now or time.time()) - beat if beat is not None else math.inf
    if age > stale_after_s:
        return f"worker {host or '?'}:{pid or '?'} sent no heartbeat for {age:.0f} s (trial {trial.number})"
    return None


def recover_stale(study, ctx: TrialContext, tracker: Tracker, stale_after_s: float) -> list[int]:
    """Fail the RUNNING trials of dead workers (marked for retry) and close their child runs.

    Only the process whose FAIL lands closes the trial (the storage refuses a second one), so two
    commands recovering at once do not both queue its point again. Call under the lock.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = _storage(study)
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, stale_after_s)
        if reason is None:
            continue
        try:
            storage.set_trial_system_attr(trial._trial_id, ATTR_RETRY, reason)
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        end_child(tracker, child_run_id(tracker, ctx, trial.number), "FAILED",
                  {TAG_STATE: "FAIL", "failure_reason": reason})
        recovered.append(trial.number)
    return recovered


def prepare_study(options: StudyOptions, tracker: Tracker | None = None) -> tuple[StudyJob, Any, Tracker]:
    """Check everything, then create or resume the study, its parent run and its queue."""
    import optuna

    space, resolved, n_trials = check_options(options)
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
        print(f"[aplab] trials {recovered} of dead workers marked FAILED; their points run again")
    job = StudyJob(context, storage_url, tracker.uri, n_trials, options.stale_after_s)
    print(f"[aplab] study {name}: {queued} points queued, storage {redact(storage_url)}, parent run {parent}")
    return job, study, tracker


# ----------------------------------------------------------------------------- workers


class Heartbeat:
    """Refreshes the trial's heartbeat attribute from a daemon thread while the trial runs."""

    def __init__(self, storage, trial_id: int, interval_s: float = HEARTBEAT_S):
        self.storage, self.trial_id, self.interval_s = storage, trial_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="aplab-heartbeat")

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.storage.set_trial_system_attr(self.trial_id, ATTR_HEARTBEAT, time.time())
            except Exception:  # noqa: BLE001 - the trial finished meanwhile, or the storage is away
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _tell(study, trial, outcome: TrialOutcome) -> bool:
    """Record the outcome; False when another command failed the trial meanwhile (its heartbeat was late)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        for key, value in outcome.attrs.items():
            if value is not None:
                trial.set_user_attr(key, value)
        if outcome.run_id:
            trial.set_user_attr("mlflow_run_id", outcome.run_id)
        if outcome.reason:
            trial.set_user_attr("failure_reason" if outcome.state == "FAIL" else "prune_reason", outcome.reason)
        study.tell(trial, outcome.value if outcome.state == "COMPLETE" else None, state=TrialState[outcome.state])
    except UpdateFinishedTrialError:
        print(f"[aplab] trial {trial.number} was failed meanwhile as stale by another command; its result "
              f"stays in its MLflow run {outcome.run_id} only", flush=True)
        return False
    return True


def _fail_crashed(study, trial, ctx: TrialContext, tracker: Tracker, err: BaseException) -> None:
    """A trial stopped by a crash or an interrupt: FAIL, marked for retry (not the point's fault)."""
    from optuna.trial import TrialState

    reason = f"{type(err).__name__}: {err}"[:500]
    try:
        _storage(study).set_trial_system_attr(trial._trial_id, ATTR_RETRY, reason)
        trial.set_user_attr("failure_reason", reason)
        study.tell(trial, state=TrialState.FAIL)
    except Exception:  # noqa: BLE001 - the next command's recovery handles what is left RUNNING
        pass
    end_child(tracker, child_run_id(tracker, ctx, trial.number), "FAILED",
              {TAG_STATE: "FAIL", "failure_reason": reason})


def _describe(trial, outcome: TrialOutcome) -> str:
    params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    value = f" val/acc {100 * outcome.value:.2f}%" if outcome.value is not None else ""
    why = f" ({outcome.reason})" if outcome.reason and outcome.state == "FAIL" else ""
    return f"trial {trial.number} {outcome.state}{value}  {params}{why}"


def worker_loop(job: StudyJob, worker: int = 0, tracker: Tracker | None = None) -> int:
    """Claim and run trials until none is left; returns how many this worker ran."""
    import optuna

    ctx = job.context
    study = open_study(job)
    storage = _storage(study)
    tracker = tracker or make_tracker(job.tracking_uri)
    ran = 0
    while True:
        with storage_lock(job.storage_url, ctx.study_name):
            trial_id = claim_trial(study, ctx.space, job.n_trials)
            if trial_id is not None:
                mark_owner(storage, trial_id)
        if trial_id is None:
            return ran
        study.sampler = ctx.space.make_sampler(storage.get_trial(trial_id).number)
        trial = optuna.Trial(study, trial_id)
        with Heartbeat(storage, trial_id):
            try:
                outcome = run_trial(trial, ctx, tracker)
            except BaseException as err:
                _fail_crashed(study, trial, ctx, tracker, err)
                raise
        if not _tell(study, trial, outcome):
            continue
        ran += 1
        print(f"[aplab] worker {worker}: {_describe(trial, outcome)}", flush=True)
        update_parent(study, ctx.space, tracker, ctx.parent_run_id, ctx.study_dir)


def _worker_process(job: StudyJob, worker: int, workers: int) -> None:
    """Entry point of a spawned worker process; CPU threads are shared out among the workers."""
    import optuna
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
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


def run_workers(job: StudyJob, workers: int, tracker: Tracker) -> list[str]:
    """Run ``workers`` worker processes (spawned) or, for one, the loop in this process; returns the dead."""
    if workers == 1:
        worker_loop(job, 0, tracker)
        return []
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_process, args=(job, i, workers), name=f"aplab-study-{i}")
                 for i in range(workers)]
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


def is_done(study, space: SearchSpace, n_trials: int | None) -> bool:
    """Nothing queued or running, and every grid point covered / the budget spent."""
    states = [state_name(t) for t in study.get_trials(deepcopy=False)]
    if "WAITING" in states or "RUNNING" in states:
        return False
    return True if space.is_grid else budget_used(study) >= (n_trials or 0)


def refit_best(job: StudyJob, study, tracker: Tracker) -> tuple[float | None, str]:
    """Retrain the best configuration on the whole noisy training set (no validation split);
    log its test accuracy in the study run. Returns (test accuracy, error text)."""
    from ..train import NonFiniteLoss, train

    ctx = job.context
    best = best_trial(study)
    if best is None:
        return None, "no COMPLETE trial to refit"
    cfg = apply_params(ctx.base, best.params)
    apply(cfg, "data.val_fraction", 0.0)
    apply(cfg, "tracking.run_name", f"{ctx.study_name}-refit")
    run_dir = ctx.study_dir / f"refit-{config_hash(resolve(cfg))}"
    try:
        result = train(cfg, tracker, run_dir=run_dir, parent_run_id=ctx.parent_run_id, progress=ctx.progress,
                       extra_tags={TAG_STUDY: ctx.study_name, TAG_ROLE: "refit", TAG_TRIAL: str(best.number)})
    except NonFiniteLoss as err:
        tracker.set_tags(ctx.parent_run_id, {"refit.failure_reason": str(err)})
        return None, f"refit failed: {err}"
    accuracy = float(result.summary["test/acc_last"])
    tracker.log_metrics(ctx.parent_run_id, [(best.number, {"refit/test_acc": accuracy})])
    tracker.set_tags(ctx.parent_run_id, {"refit.run_id": str(result.run_id), "refit.trial": str(best.number),
                                         **{f"refit.{k}": str(v) for k, v in best.params.items()}})
    return accuracy, ""


def run_study(options: StudyOptions, tracker: Tracker | None = None) -> StudyReport:
    """The whole ``aplab study`` command: prepare, run the workers, summarise, refit."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    job, study, tracker = prepare_study(options, tracker)
    ctx = job.context
    dead = run_workers(job, options.workers, tracker)
    if dead:
        with storage_lock(job.storage_url, ctx.study_name):
            recover_stale(study, ctx, tracker, job.stale_after_s)
            enqueue_grid(study, ctx.space)
    update_parent(study, ctx.space, tracker, ctx.parent_run_id, ctx.study_dir)
    done = is_done(study, ctx.space, job.n_trials)
    report = StudyReport(job, counts(study), done, dead_workers=dead)
    best = best_trial(study)
    if best is not None:
        report.best = {"trial": best.number, "value": best.value, "params": dict(best.params)}
    if options.refit and done:
        report.refit_test_acc, report.refit_error = refit_best(job, study, tracker)
    elif options.refit:
        print("[aplab] refit skipped: trials are still queued or running; run the command again with --refit")
    if dead:
        tracker.set_tags(ctx.parent_run_id, {"study.incomplete": "; ".join(dead)})
        tracker.end_run(ctx.parent_run_id, "FAILED")
    elif done:
        tracker.end_run(ctx.parent_run_id, "FINISHED")
    return report


__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "Heartbeat", "StudyJob", "StudyOptions", "StudyReport", "budget_used",
           "check_options", "claim_trial", "default_study_name", "enqueue_grid", "ensure_parent_run", "is_done",
           "mark_owner", "prepare_study", "recover_stale", "refit_best", "run_study", "run_workers", "stale_reason",
           "worker_loop"]
