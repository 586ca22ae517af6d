"""One training run end to end: resolved config -> data -> engine -> local state and tracker.

The run folder (``<workdir>/<experiment>/<config hash>``) holds the atomic checkpoint and state.json:
re-running the same command after a crash resumes into the same tracked run from the last epoch. A run
that FAILED (non-finite loss, unreadable run file) is trained again from scratch, as a new tracked run,
by the same command: its last checkpoint is not trusted (the epoch that diverged would diverge again).

A distributed run (``runtime.nproc_per_node > 1``, or started by torchrun) is one run: rank 0 decides
what to do from the run folder, holds the claim, tracks, checkpoints and writes artifacts; the other
ranks receive its decision and checkpoint, and train their slices of the same epochs.

``TrainingRun`` only orchestrates; each job is a room of its own: ``build`` (the engine), ``identity``
(tags, fresh state), ``resume`` (checkpoints), ``run_files`` (corrupt files, failure marking), ``ranks``,
``artifacts``, ``system_metrics``, ``result`` and ``sync``; ``entry.train`` is the call everyone makes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..config import RunConfig, config_hash, run_folder
from ..distributed import SINGLE, Rank
from ..errors import TrackingUnavailable
from ..keys import M, T
from ..status import RunStatus
from ..tracking import Tracker, default_uri, same_store
from .artifacts import finalise, write_start_artifacts
from .build import build_engine
from .claim import RunClaim
from .context import RunContext
from .engine import Engine, NonFiniteLoss
from .group import from_main, gather
from .identity import fresh_state
from .prepare import PreparedData, make_batches, prepare_data
from .ranks import run_rank
from .recorder import RunRecorder
from .result import RunResult, finish_sync
from .resume import restore_training, resume, rng_states, save_epoch
from .run_files import fail, fail_lost_checkpoint, load_recorder, load_run_checkpoint
from .runtime import Runtime, select_runtime
from .system_metrics import start_system_metrics, stop_monitor

log = logging.getLogger(__name__)


def summary_line(epoch: int, epochs: int, m: dict[str, float]) -> str:
    val = f" val {100 * m[M.VAL_ACC]:5.1f}%" if M.VAL_ACC in m else ""
    return (f"epoch {epoch:>3}/{epochs}  loss {m[M.TRAIN_LOSS]:.4f}  train {100 * m[M.TRAIN_ACC_NOISY]:5.1f}% noisy"
            f" {100 * m[M.TRAIN_ACC_CLEAN]:5.1f}% clean  memorised {100 * m[M.TRAIN_MEMORISED]:5.1f}%{val}"
            f"  test {100 * m[M.TEST_ACC]:5.1f}%  lr {m[M.LR]:.4g}  {m[M.EPOCH_SECONDS]:.1f}s"
            f" {m[M.IMAGES_PER_SECOND]:,.0f} img/s")


@dataclass
class OpenRun:
    """A run ready to train epoch ``start``: its engine, batches, recorder and claim (what a stack trains)."""

    engine: Engine
    train: Any
    val: Any
    test: Any
    recorder: RunRecorder
    claim: RunClaim
    runtime: Runtime
    start: int
    monitor: object | None = None


class TrainingRun:
    """Runs or resumes one resolved config (``resolve(cfg)``, done once by ``train``)."""

    def __init__(self, cfg: RunConfig, tracker: Tracker | None, run_dir: Path | None = None,
                 parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None,
                 progress: bool = True, on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                 rank: Rank = SINGLE):
        digest = config_hash(cfg)
        self.ctx = RunContext(cfg, digest, tracker, tracker.uri if tracker is not None else default_uri(cfg.tracking.uri),
                              run_dir or run_folder(cfg, digest), rank)
        self.parent_run_id = parent_run_id
        self.extra_tags = extra_tags or {}
        self.progress = progress
        self.on_epoch = on_epoch

    def run(self) -> RunResult | None:
        """Check the inputs, claim the run folder (one trainer per run: RunClaimed if another process
        trains it), then train, resume or skip the run. A rank other than 0 follows rank 0 and returns None."""
        if self.ctx.rank.distributed:
            return run_rank(self.ctx, self._claim_and_run)
        runtime = select_runtime(self.ctx.cfg.runtime)
        data = prepare_data(self.ctx.cfg)  # a missing or bad dataset fails here, before the tracker is touched
        return self._claim_and_run(runtime, data)

    def _claim_and_run(self, runtime: Runtime, data: PreparedData) -> RunResult:
        if self.ctx.tracker is not None:
            self.ctx.tracker.check()  # fail fast, before any run, claim or checkpoint exists
        with RunClaim(self.ctx.run_dir) as claim:
            return self._run(claim, runtime, data)

    def _recorder_to_continue(self) -> RunRecorder | None:
        """The run folder's state when this run continues it: None for a new run (none yet, another store,
        or FAILED earlier: its FAILED status reaches the tracker first)."""
        ctx = self.ctx
        recorder = load_recorder(ctx, self.parent_run_id)
        if recorder is not None and not same_store(recorder.state.tracking_uri, ctx.uri):
            return None  # same config, another tracking store: a new run
        if recorder is not None and recorder.state.status == RunStatus.FAILED:
            finish_sync(recorder)
            log.info("run %s FAILED earlier: training it again from scratch", ctx.run_dir)
            return None
        return recorder

    def _run(self, claim: RunClaim, runtime: Runtime, data: PreparedData) -> RunResult:
        opened = self.open(claim, runtime, data)
        if isinstance(opened, RunResult):
            return opened
        epochs = self.ctx.cfg.optim.epochs
        bar = tqdm(range(opened.start, epochs + 1), desc=opened.recorder.state.run_name, unit="epoch",
                   initial=opened.start - 1, total=epochs, disable=None if self.progress else True, leave=False,
                   file=sys.stderr)  # None: no bar off a TTY
        matrix = None
        try:
            for epoch in bar:
                metrics, matrix = opened.engine.epoch(opened.train, opened.val, opened.test, epoch, epochs,
                                                      confusion=epoch == epochs)
                self.record_epoch(opened, epoch, metrics, bar.write)
        except NonFiniteLoss as err:
            raise self.fail(opened, err) from None
        except KeyboardInterrupt:
            self.interrupted(opened)
            raise
        finally:
            bar.close()
            self.close(opened)
        return self.finish(opened, matrix)

    def open(self, claim: RunClaim, runtime: Runtime, data: PreparedData) -> OpenRun | RunResult:
        """Ready the run to train its next epoch (fresh, or resumed from its checkpoint), or its result when
        it finished earlier (skipped) or trained its last epoch before a kill (finished now)."""
        ctx, cfg = self.ctx, self.ctx.cfg
        recorder = self._recorder_to_continue()
        if recorder is not None and recorder.state.status == RunStatus.FINISHED:
            from_main(None, ctx.rank)  # the other ranks have nothing to do
            recorder.forget_lost_run()
            return finish_sync(recorder, skipped=True)

        checkpoint = load_run_checkpoint(ctx, recorder) if recorder is not None else None
        if recorder is not None and checkpoint is None and recorder.state.history:
            fail_lost_checkpoint(ctx, recorder)
            recorder = None
        from_main({"checkpoint": checkpoint}, ctx.rank)  # what the other ranks resume from (None: a fresh start)
        engine = build_engine(cfg, data, runtime, ctx.rank)
        train, val, test = make_batches(data, cfg, runtime, ctx.rank)
        if checkpoint is not None and recorder is not None:
            start = resume(ctx, engine, train, checkpoint, recorder)
        else:
            earlier = recorder.state if recorder is not None else None  # killed before its first epoch
            recorder = RunRecorder(ctx.run_dir, ctx.tracker, fresh_state(ctx, data, runtime, self.parent_run_id,
                                                                         self.extra_tags))
            if earlier is not None:  # its tracked run (made, or perhaps made before the kill) is this run's
                recorder.state.run_id = earlier.run_id
                if T.RUN_KEY in earlier.tags:
                    recorder.state.tags[T.RUN_KEY] = earlier.tags[T.RUN_KEY]
            write_start_artifacts(ctx.run_dir, cfg, data)
            start = restore_training(ctx, engine, train, None)
            if ctx.tracker is not None and not recorder.ensure_run():
                raise TrackingUnavailable(f"could not create a run in {ctx.uri}; see the warning above")
            recorder.save()
        if start > cfg.optim.epochs:  # killed after its last epoch's checkpoint, before it finished: finish now
            return self.finish(OpenRun(engine, train, val, test, recorder, claim, runtime, start),
                               engine.confusion(test))
        monitor = start_system_metrics(cfg, ctx.tracker, recorder, resumed=start > 1)
        return OpenRun(engine, train, val, test, recorder, claim, runtime, start, monitor)

    def record_epoch(self, opened: OpenRun, epoch: int, metrics: dict[str, float],
                     write: Callable[..., None] | None = None) -> None:
        """An epoch done: into the history, the checkpoint, the tracker and the claim's heartbeat."""
        ctx, recorder = self.ctx, opened.recorder
        recorder.state.history.append({"epoch": epoch, **metrics})
        save_epoch(ctx.run_dir, opened.engine, opened.train, recorder.state.history, epoch,
                   gather(rng_states(opened.runtime), ctx.rank))
        if recorder.ensure_run():
            recorder.push_pending()
        recorder.save()
        opened.claim.refresh()  # the heartbeat other hosts sharing the run folder go by
        if self.progress and write is not None:
            write(summary_line(epoch, ctx.cfg.optim.epochs, metrics), file=sys.stderr)
        if self.on_epoch is not None:
            self.on_epoch(epoch, metrics)

    def fail(self, opened: OpenRun, err: NonFiniteLoss) -> NonFiniteLoss:
        """The run FAILED (here and in the tracker); the error to raise, naming its folder."""
        failure = NonFiniteLoss(err.loss, err.epoch, self.ctx.run_dir)
        fail(self.ctx.run_dir, opened.recorder, failure)
        return failure

    def interrupted(self, opened: OpenRun) -> None:
        """Ctrl-C: the tracker shows KILLED; the same command resumes (and sets RUNNING)."""
        recorder = opened.recorder
        if recorder.run_id is not None:
            recorder.attempt("status", lambda: self.ctx.tracker.end_run(recorder.run_id, RunStatus.KILLED))

    def close(self, opened: OpenRun) -> None:
        if opened.monitor is not None:
            stop_monitor(opened.monitor)
            opened.monitor = None

    def finish(self, opened: OpenRun, matrix) -> RunResult:
        finalise(self.ctx, opened.engine, opened.recorder, matrix)
        return finish_sync(opened.recorder)
