"""A run folder's files when they go wrong: an unreadable state.json or checkpoint is set aside and the run
marked FAILED (here and in the tracker), so the same command trains it again from scratch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import RunFailed, RunFileCorrupt
from ..keys import T
from ..status import RunStatus
from .checkpoint import load_checkpoint
from .context import RunContext
from .recorder import STATE_FILE, RunRecorder
from .recover import recover_finished, started_here
from .result import finish_sync
from .resume import CHECKPOINT

log = logging.getLogger(__name__)
T_ = TypeVar("T_")


def set_aside(path: Path, problem: str) -> RunFileCorrupt:
    """Keep an unreadable run file as ``<name>.corrupt`` and say so in one line: the run is marked FAILED, and
    the same command trains it again from scratch."""
    path.replace(path.with_name(path.name + ".corrupt"))
    return RunFileCorrupt(path, f"truncated or corrupt: {problem}", f"the run is marked FAILED and the file kept as "
                          f"{path.name}.corrupt; run the same command again to train it from scratch")


def load_recorder(ctx: RunContext, parent_run_id: str | None = None) -> RunRecorder | None:
    """The run folder's state. When state.json is unreadable or gone from a folder a run began in, a FINISHED
    run of this config in the store is recovered (rebuilt from it, so it is not trained twice); otherwise the
    tracked runs it leaves RUNNING are marked FAILED and an unreadable file is set aside (RunFileCorrupt)."""
    try:
        recorder = RunRecorder.load(ctx.run_dir, ctx.tracker)
    except RunFileCorrupt as err:
        cause = err.__cause__
        failure = set_aside(ctx.run_dir / STATE_FILE, f"{type(cause).__name__}: {cause}")
        recovered = guarded(lambda: recover_finished(ctx, parent_run_id, f"was unreadable (kept as {STATE_FILE}"
                                                                         ".corrupt)"))
        if recovered is not None:
            return recovered
        reason = f"{STATE_FILE} unreadable: {err}"
        guarded(lambda: fail_tracked_runs(ctx, reason))
        (ctx.run_dir / CHECKPOINT).unlink(missing_ok=True)  # its epochs are not trusted without their state
        raise failure from None
    if recorder is None and started_here(ctx.run_dir):
        recovered = guarded(lambda: recover_finished(ctx, parent_run_id, "is missing"))
        if recovered is not None:
            return recovered
        reason = f"{STATE_FILE} missing from {ctx.run_dir}: the run cannot be continued"
        if guarded(lambda: fail_tracked_runs(ctx, reason)):
            log.warning("%s; its tracked runs left RUNNING are marked FAILED and it trains again from scratch",
                        reason)
    return recorder


def guarded(call: Callable[[], T_]) -> T_ | None:
    """A store call made while a run file is lost: an outage is warned about and must not hide that error."""
    try:
        return call()
    except Exception as outage:  # noqa: BLE001 - an outage must not hide the run file's error
        log.warning("could not look the run up in the tracking store (%s: %s)", type(outage).__name__, outage)
        return None


def fail_tracked_runs(ctx: RunContext, reason: str) -> bool:
    """End FAILED the tracked runs of this config left RUNNING or KILLED (resumable) in the experiment:
    their state is lost, so none of them can be resumed. True when there was one."""
    if ctx.tracker is None:
        return False
    found = False
    for record in ctx.tracker.find_runs(ctx.cfg.tracking.experiment, {T.CONFIG_HASH: ctx.digest}):
        if record.status in (RunStatus.RUNNING, RunStatus.KILLED):
            ctx.tracker.set_tags(record.run_id, {T.FAILURE_REASON: reason})
            ctx.tracker.end_run(record.run_id, RunStatus.FAILED)
            found = True
    return found


def load_run_checkpoint(ctx: RunContext, recorder: RunRecorder) -> dict[str, Any] | None:
    """The last checkpoint; an unreadable one fails the run (FAILED, retried from scratch by a re-run)."""
    path = ctx.run_dir / CHECKPOINT
    try:
        return load_checkpoint(path)
    except Exception as err:  # torch.load's failures on a damaged file have no common type
        failure = set_aside(path, f"{type(err).__name__}: {' '.join(str(err).split())[:200]}")
        fail(ctx.run_dir, recorder, failure)
        raise failure from None


def fail(run_dir: Path, recorder: RunRecorder, err: RunFailed) -> None:
    """Mark the run FAILED with its reason, here and in the tracker; a re-run starts it from scratch."""
    recorder.state.status, recorder.state.end_tags = RunStatus.FAILED, {T.FAILURE_REASON: str(err)}
    (run_dir / CHECKPOINT).unlink(missing_ok=True)
    recorder.save()
    finish_sync(recorder)


def fail_lost_checkpoint(ctx: RunContext, recorder: RunRecorder) -> None:
    """state.json records epochs but their checkpoint is gone (deleted, or a disk lost it): those epochs cannot
    be continued, and training them again into the same tracked run would log each twice. The run is marked
    FAILED with the reason; the caller trains the config again from scratch in a new run."""
    reason = f"{CHECKPOINT} missing after epoch {recorder.state.last_epoch}: its epochs cannot be continued"
    log.warning("%s (%s): run %s is marked FAILED and the config trains again from scratch in a new run", reason,
                ctx.run_dir, recorder.run_id)
    fail(ctx.run_dir, recorder, RunFailed(reason))
