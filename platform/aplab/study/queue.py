"""The study's trial queue: enqueue, claim, budget, stale trials, heartbeat (what it needs of Optuna beyond
its documented API is in ``optuna_adapter``).

Every trial a worker runs comes from ``study.ask()`` (a queued point, else a new trial), called
under aplab's storage lock so that the budget check and the claim are one step for all processes.
A trial whose worker died, or that a crash stopped, is told FAIL and its point is queued again as a
new trial whose user attribute ``aplab.retry_of`` names it: such a FAIL is "retried" and neither
covers its point nor counts against the budget. Owner and heartbeat are user attributes.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from typing import Any

from ..placement import current_task, task_gone, task_id
from ..processes import process_start, same_process
from ..status import TrialStatus
from .optuna_adapter import enqueued_params, is_finished, use_sampler
from .space import SearchSpace

HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0  # a RUNNING trial of another host without a heartbeat for this long is stale

# Trial user attributes aplab writes (what tells a dead worker's trial, and what replaces it).
ATTR_OWNER = "aplab.owner"  # {"host", "pid", "pid_start"[, "slurm_job", "slurm_task"]}: pid_start tells a reused pid
ATTR_HEARTBEAT = "aplab.heartbeat"  # unix time, refreshed while the trial runs
ATTR_POINT = "aplab.point"  # the grid point an enqueued trial is to run
ATTR_RETRY_OF = "aplab.retry_of"  # on a queued trial: the number of the FAIL it runs again
ATTR_RETRY_REASON = "aplab.retry_reason"  # why that FAIL is not the point's fault (dead worker, crash)
ATTR_FAILURE_REASON = "failure_reason"  # why a trial's own point failed (never retried)
# Trial user attributes shown in the trials table (``summary``).
ATTR_MLFLOW_RUN_ID = "mlflow_run_id"
ATTR_RUN_DIR = "run_dir"
ATTR_TEST_ACC_LAST = "test_acc_last"  # shown, never used to choose
ATTR_PRUNED_AT_EPOCH = "pruned_at_epoch"
ATTR_PRUNE_REASON = "prune_reason"


def retried(trials) -> dict[int, str]:
    """The FAIL trials that another trial runs again: number -> why they failed."""
    return {int(t.user_attrs[ATTR_RETRY_OF]): str(t.user_attrs.get(ATTR_RETRY_REASON, ""))
            for t in trials if ATTR_RETRY_OF in t.user_attrs}


def point_of(trial) -> dict[str, Any]:
    """The point a trial runs: the one it was enqueued with, else the values it drew.

    Grid trials queued before aplab recorded ``aplab.point`` carry their point only in Optuna's own record of
    what was enqueued (``optuna_adapter.enqueued_params``).
    """
    return dict(trial.user_attrs.get(ATTR_POINT) or trial.params or enqueued_params(trial))


def same_point(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal keys and values (numbers up to float round-off, as a storage may round-trip them)."""
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if not (math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0) if numbers else x == y):
            return False
    return True


def enqueue_grid(study, space: SearchSpace) -> int:
    """Queue every grid point that no trial covers (a retried FAIL covers nothing); returns how many.

    Call under the storage lock.
    """
    if not space.is_grid:
        return 0
    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    covered = [point_of(t) for t in trials if t.number not in again]
    queued = 0
    for point in space.points():
        if not any(same_point(point, p) for p in covered):
            study.enqueue_trial(point, user_attrs={ATTR_POINT: point}, skip_if_exists=False)
            covered.append(point)
            queued += 1
    return queued


def budget_used(trials) -> int:
    """Trials that count against ``n_trials``: all but the retried FAILs (their replacement counts)."""
    again = retried(trials)
    return sum(t.number not in again for t in trials)


def claim_trial(study, space: SearchSpace, n_trials: int | None):
    """An ``optuna.Trial`` for this worker: a queued one, else a new one while the budget allows
    (sampled spaces only); None when there is nothing left. Call under the storage lock, which makes
    the check and ``study.ask()`` one step (the grid never creates trials of its own)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    waiting = any(t.state == TrialState.WAITING for t in trials)
    if not waiting and (space.is_grid or n_trials is None or budget_used(trials) >= n_trials):
        return None
    trial = study.ask()
    use_sampler(study, space.make_sampler(trial.number))  # seeded by the trial's number
    return trial


def mark_owner(trial) -> None:
    """Record which process runs the trial, so a later command can tell when it died."""
    task = current_task()
    trial.set_user_attr(ATTR_OWNER, {"host": socket.gethostname(), "pid": os.getpid(),
                                     "pid_start": process_start(os.getpid()),
                                     **({"slurm_job": task[0], "slurm_task": task_id(*task)} if task else {})})
    trial.set_user_attr(ATTR_HEARTBEAT, time.time())


def stale_reason(trial, stale_after_s: float, now: float | None = None) -> str | None:
    """Why a RUNNING trial's worker is dead, or None when it may be alive.

    On this host the recorded process is checked (gone, a zombie, or its pid reused); a trial of
    another host is stale once the Slurm task it ran in is no longer queued or running (where Slurm can be
    asked), or when its heartbeat is older than ``stale_after_s``.
    """
    owner = trial.user_attrs.get(ATTR_OWNER) or {}
    host, pid = owner.get("host"), owner.get("pid")
    if host == socket.gethostname() and pid is not None:
        recorded = owner.get("pid_start")
        if (process_start(int(pid)) is not None if recorded is None else same_process(int(pid), recorded, 0.01)):
            return None  # alive (and, when its start time was recorded, the very same process)
        return f"worker {host}:{pid} died while running trial {trial.number}"
    gone = _slurm_task_gone(owner)
    if gone is not None:
        return f"worker {host or '?'}:{pid or '?'} is gone: {gone} (trial {trial.number})"
    beat = trial.user_attrs.get(ATTR_HEARTBEAT) or (trial.datetime_start.timestamp() if trial.datetime_start else None)
    age = (now or time.time()) - beat if beat is not None else math.inf
    if age > stale_after_s:
        return f"worker {host or '?'}:{pid or '?'} sent no heartbeat for {age:.0f} s (trial {trial.number})"
    return None


def _slurm_task_gone(owner: dict[str, Any]) -> str | None:
    """Why the Slurm task a trial ran in no longer runs it; None when it may (or Slurm cannot be asked)."""
    job, task = owner.get("slurm_job"), owner.get("slurm_task")
    return task_gone(job, task) if job and task else None


def fail_for_retry(study, trial, reason: str) -> bool:
    """Tell a RUNNING trial FAIL and queue its point again as a new trial; call under the storage lock.

    ``trial`` is a FrozenTrial or an ``optuna.Trial``. Returns False, queuing nothing, when the
    trial has finished already (its worker told it, or another command failed it first).
    """
    from optuna.trial import TrialState

    if is_finished(study, trial.number):
        return False
    frozen = study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    if frozen.state != TrialState.FAIL or ATTR_FAILURE_REASON in frozen.user_attrs:
        return False  # its worker told it meanwhile (a result, or a failure of the point itself)
    attrs: dict[str, Any] = {ATTR_RETRY_OF: frozen.number, ATTR_RETRY_REASON: reason}
    if ATTR_POINT in frozen.user_attrs:
        attrs[ATTR_POINT] = frozen.user_attrs[ATTR_POINT]
    study.enqueue_trial(point_of(frozen), user_attrs=attrs, skip_if_exists=False)
    return True


def stale_trials(study, stale_after_s: float) -> list[tuple[Any, str]]:
    """The RUNNING trials whose worker is dead, each with the reason."""
    from optuna.trial import TrialState

    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, stale_after_s)
        if reason is not None:
            found.append((trial, reason))
    return found


def is_done(study, space: SearchSpace, n_trials: int | None) -> bool:
    """Nothing queued or running, and every grid point covered / the budget spent."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state.name in (TrialStatus.WAITING, TrialStatus.RUNNING) for t in trials):
        return False
    return True if space.is_grid else budget_used(trials) >= (n_trials or 0)


class Heartbeat:
    """Refreshes the trial's heartbeat attribute from a daemon thread while the trial runs
    (Optuna's own heartbeat covers RDB storages only; the journal has none)."""

    def __init__(self, trial, interval_s: float = HEARTBEAT_S):
        self.trial, self.interval_s = trial, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="aplab-heartbeat")

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.trial.set_user_attr(ATTR_HEARTBEAT, time.time())
            except Exception:  # noqa: BLE001 - the trial finished meanwhile, or the storage is away
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


__all__ = ["ATTR_FAILURE_REASON", "ATTR_HEARTBEAT", "ATTR_MLFLOW_RUN_ID", "ATTR_OWNER", "ATTR_POINT",
           "ATTR_PRUNED_AT_EPOCH", "ATTR_PRUNE_REASON", "ATTR_RETRY_OF", "ATTR_RETRY_REASON", "ATTR_RUN_DIR", "ATTR_TEST_ACC_LAST",
           "HEARTBEAT_S", "STALE_AFTER_S", "Heartbeat", "budget_used", "claim_trial", "enqueue_grid", "fail_for_retry",
           "is_done", "mark_owner", "point_of", "retried", "same_point", "stale_reason",
           "stale_trials"]
