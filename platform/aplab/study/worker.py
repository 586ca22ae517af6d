"""A study's workers: each claims a trial under the storage lock, trains it, tells Optuna, until none is left.

Workers are processes of this host (``run_workers``, spawned) or Slurm tasks (``executors.slurm_study``)
on any node that reaches the storage; a crashed trial is failed and its point queued again.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from contextlib import ExitStack

from ..processes import cores_share
from ..status import RunStatus, TrialStatus
from ..keys import T
from ..tracking import Tracker, make_tracker
from ..workers.gpus import use_only_gpu
from ..workers.slurm import use_slurm
from .objective import TrialOutcome, child_run_id, end_child, run_trial, run_trials
from .optuna_adapter import tell_unless_finished
from .prepare import StudyJob, open_study
from .queue import ATTR_FAILURE_REASON, ATTR_MLFLOW_RUN_ID, ATTR_PRUNE_REASON, Heartbeat, claim_trial, fail_for_retry, mark_owner
from .storage import storage_lock
from .summary import update_parent

log = logging.getLogger(__name__)


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
    """Claim and run trials (``job.stack`` at a time, trained as one stack) until none is left; returns how
    many this worker ran."""
    ctx = job.context
    study = open_study(job)
    tracker = tracker or make_tracker(job.tracking_uri)
    ran = 0
    while True:
        trials = []
        with storage_lock(job.storage_url, ctx.study_name):
            while len(trials) < job.stack:
                trial = claim_trial(study, ctx.space, job.n_trials)
                if trial is None:
                    break
                mark_owner(trial)
                trials.append(trial)
        if not trials:
            return ran
        with ExitStack() as heartbeats:
            for trial in trials:
                heartbeats.enter_context(Heartbeat(trial))
            try:
                outcomes = ([run_trial(trials[0], ctx, tracker)] if len(trials) == 1
                            else run_trials(trials, ctx, tracker))
            except BaseException as err:
                for trial in trials:
                    _fail_crashed(job, study, trial, tracker, err)
                raise
        crash: BaseException | None = None
        for trial, outcome in zip(trials, outcomes):
            if isinstance(outcome, BaseException):  # this trial crashed: retried; the stack's others are told
                _fail_crashed(job, study, trial, tracker, outcome)
                crash = crash or outcome
                continue
            if not _tell(study, trial, outcome):
                continue
            ran += 1
            log.info("worker %d: %s", worker, _describe(trial, outcome))
            update_parent(study, ctx.space, tracker, ctx.parent_run_id, ctx.study_dir)
        if crash is not None:
            raise crash


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


__all__ = ["run_workers", "worker_loop"]
