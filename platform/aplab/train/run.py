"""One training run end to end: resolved config -> data -> engine -> local state and tracker.

The run folder (``<workdir>/<experiment>/<config hash>``) holds the atomic checkpoint and state.json:
re-running the same command after a crash resumes into the same tracked run from the last epoch. A run
that FAILED (non-finite loss, unreadable run file) is trained again from scratch, as a new tracked run,
by the same command: its last checkpoint is not trusted (the epoch that diverged would diverge again).

A distributed run (``runtime.nproc_per_node > 1``, or started by torchrun) is one run: rank 0 decides
what to do from the run folder, holds the claim, tracks, checkpoints and writes artifacts; the other
ranks receive its decision and checkpoint, and train their slices of the same epochs.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import losses
from ..atomic import atomic_write_bytes
from ..config import RunConfig, config_hash, loss_kwargs, to_yaml
from ..distributed import SINGLE, Rank, rank_from_environment
from ..errors import AplabError, ConfigError, RunFailed, RunFileCorrupt, TrackingUnavailable
from ..models import build_model, float32_head
from ..keys import P_REALISED_NOISE_RATE, P_TRAIN_SIZE, P_VAL_SIZE, M, T
from ..processes import die_with_parent
from ..config.resolve import resolve
from .claim import RunClaim
from ..placement import placement_tags
from ..version import code_version
from ..tracking import DatasetRecord, Tracker, default_uri, make_tracker
from .batches import check_batch_split
from .checkpoint import load_checkpoint, save_checkpoint
from .engine import Engine, NonFiniteLoss
from .group import first_error, from_main, gather, join_group, leave_group
from .prepare import PreparedData, labels_digest, make_batches, prepare_data
from .recorder import MODEL_FILE, STATE_FILE, RunRecorder
from .runtime import Runtime, seed_everything, seed_rank, select_runtime
from ..status import RunStatus

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
ELASTIC_AGENT = "TORCHELASTIC_RUN_ID"  # set by torchrun's agent in every process it starts


@dataclass
class RunResult:
    status: RunStatus  # FINISHED now, SKIPPED (finished earlier); sync() also reports FAILED, RUNNING
    run_id: str | None
    config_hash: str
    run_dir: Path
    summary: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    synced: bool = True  # False while the tracker has not received everything (see `aplab sync`)


def where_tags(runtime: Runtime, rank: Rank = SINGLE, backend: str | None = None) -> dict[str, str]:
    """Where and on how many processes the run trains: set at its start and again at each resume (a requeued
    Slurm task, another host or world size), so the tags say where it last trained."""
    return {T.WORLD_SIZE: str(rank.world_size), **({T.BACKEND: backend} if backend else {}),
            **placement_tags(runtime.device)}


def run_tags(cfg: RunConfig, digest: str, runtime: Runtime, rank: Rank = SINGLE,
             backend: str | None = None) -> dict[str, str]:
    return {**where_tags(runtime, rank, backend),
        T.DATASET: cfg.data.name, T.MODEL: str(cfg.model.name), T.LOSS: cfg.loss.name, T.NOISE: cfg.noise.spec,
        T.SEED: str(cfg.runtime.seed), T.FIDELITY: cfg.loss.fidelity, T.CONFIG_HASH: digest,
        T.CODE_VERSION: code_version(), T.VAL_LABELS: "clean" if cfg.data.clean_val else "noisy",
        T.PRECISION: runtime.precision, T.DEVICE: str(runtime.device),
    }


def default_run_name(cfg: RunConfig) -> str:
    return f"{cfg.data.name}-{cfg.loss.name}-{cfg.noise.spec}-s{cfg.runtime.seed}"


def dataset_records(cfg: RunConfig, data: PreparedData) -> list[DatasetRecord]:
    """The run's dataset inputs: noisy training labels, validation labels (noisy or clean) and the test set."""
    name, source = cfg.data.name, f"aplab:{cfg.data.name}"
    records = [DatasetRecord(f"{name}-train-{cfg.noise.spec}", data.labels_digest, source, int(data.noisy.labels.size))]
    if data.val_idx.size:
        val_labels = (data.dataset.train.labels if data.clean_val else data.noisy.labels)[data.val_idx]
        kind = "clean" if data.clean_val else cfg.noise.spec
        records.append(DatasetRecord(f"{name}-val-{kind}", labels_digest(val_labels), source, int(val_labels.size),
                                     context="validation"))
    test_labels = data.dataset.test.labels
    records.append(DatasetRecord(f"{name}-test", labels_digest(test_labels), source, int(test_labels.size),
                                 context="test"))
    return records


def summary_line(epoch: int, epochs: int, m: dict[str, float]) -> str:
    val = f" val {100 * m[M.VAL_ACC]:5.1f}%" if M.VAL_ACC in m else ""
    return (f"epoch {epoch:>3}/{epochs}  loss {m[M.TRAIN_LOSS]:.4f}  train {100 * m[M.TRAIN_ACC_NOISY]:5.1f}% noisy"
            f" {100 * m[M.TRAIN_ACC_CLEAN]:5.1f}% clean  memorised {100 * m[M.TRAIN_MEMORISED]:5.1f}%{val}"
            f"  test {100 * m[M.TEST_ACC]:5.1f}%  lr {m[M.LR]:.4g}  {m[M.EPOCH_SECONDS]:.1f}s"
            f" {m[M.IMAGES_PER_SECOND]:,.0f} img/s")


def run_summary(history: list[dict[str, float]]) -> dict[str, float]:
    """The end-of-run numbers: last epoch, best validation epoch, and the best test epoch (logged only)."""
    top = max(history, key=lambda row: row[M.TEST_ACC])  # the "best epoch" many later papers report
    summary = {M.TEST_ACC_LAST: history[-1][M.TEST_ACC], M.TEST_ACC_BEST: top[M.TEST_ACC],
               M.BEST_TEST_EPOCH: float(top["epoch"])}
    if M.VAL_ACC in history[0]:
        best = max(history, key=lambda row: row[M.VAL_ACC])  # first epoch among ties
        summary.update({M.TEST_ACC_BEST_VAL: best[M.TEST_ACC], M.VAL_ACC_BEST: best[M.VAL_ACC],
                        M.BEST_VAL_EPOCH: float(best["epoch"]), M.VAL_ACC_LAST: history[-1][M.VAL_ACC]})
    return summary


class TrainingRun:
    """Builds everything for one resolved config (``resolve(cfg)``, done once by ``train``) and runs or resumes it."""

    def __init__(self, cfg: RunConfig, tracker: Tracker | None, run_dir: Path | None = None,
                 parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None,
                 progress: bool = True, on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                 rank: Rank = SINGLE):
        self.cfg = cfg
        self.digest = config_hash(cfg)
        self.tracker = tracker
        self.uri = tracker.uri if tracker is not None else default_uri(cfg.tracking.uri)
        self.run_dir = run_dir or Path(cfg.tracking.workdir) / cfg.tracking.experiment / self.digest
        self.parent_run_id = parent_run_id
        self.extra_tags = extra_tags or {}
        self.progress = progress
        self.on_epoch = on_epoch
        self.rank = rank
        self.backend: str | None = None  # torch.distributed's, once this rank joined its group

    # -- setup -------------------------------------------------------------------------------
    def _build(self, data: PreparedData, runtime: Runtime) -> Engine:
        cfg = self.cfg
        dataset = data.dataset
        seed_everything(cfg.runtime.seed)
        model = build_model(cfg.model.name, dataset.num_classes, dataset.channels, dataset.image_size)
        model = float32_head(model).to(runtime.device)
        if runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        loss_fn = losses.build(cfg.loss.name, dataset.num_classes, fidelity=cfg.loss.fidelity, **loss_kwargs(cfg))
        loss_fn.observe_labels(data.noisy.labels[data.train_idx])
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                    weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
        schedulers = torch.optim.lr_scheduler
        schedules = {
            "cosine": lambda: schedulers.CosineAnnealingLR(optimizer, T_max=cfg.optim.epochs),
            "exponential": lambda: schedulers.ExponentialLR(optimizer, gamma=cfg.optim.lr_decay),
            "step": lambda: schedulers.StepLR(optimizer, step_size=cfg.optim.step_size, gamma=cfg.optim.lr_decay),
            "constant": lambda: schedulers.LambdaLR(optimizer, lambda _: 1.0),
        }
        scheduler = schedules[cfg.optim.schedule]()
        compiled = torch.compile(model) if cfg.runtime.compile else None
        trainer = self._distribute(model, runtime)
        if trainer is not None and compiled is not None:
            trainer = torch.compile(trainer)
        seed_rank(cfg.runtime.seed, self.rank)  # every rank built the same model; now each draws its own
        return Engine(model, loss_fn, optimizer, scheduler, runtime, cfg.optim.grad_clip, dataset.num_classes, compiled,
                      trainer, self.rank)

    def _distribute(self, model: torch.nn.Module, runtime: Runtime) -> torch.nn.Module | None:
        """The DistributedDataParallel module that trains ``model`` in a distributed run (None in one process).

        SyncBatchNorm (``runtime.sync_bn``) replaces ``model``'s BatchNorm layers in place, so ``model`` (what
        checkpoints hold) keeps BatchNorm's state-dict keys: a checkpoint resumes under any world size.
        PyTorch's SyncBatchNorm runs on GPUs only: on CPU each rank normalises with its slice's statistics."""
        if not self.rank.distributed:
            return None
        from torch.nn.parallel import DistributedDataParallel

        # DDP warns once per process when a gradient's strides differ from its bucket's along a dimension of
        # size 1 only (the first convolution of a one-channel input), which costs nothing: not news to a user
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        on_cuda = runtime.device.type == "cuda"
        if self.cfg.runtime.sync_bn and on_cuda:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif self.cfg.runtime.sync_bn and self.rank.is_main:
            log.info("runtime.sync_bn: PyTorch's SyncBatchNorm needs GPUs; on CPU each rank's BatchNorm uses "
                     "the statistics of its slice of the batch")
        return DistributedDataParallel(model, device_ids=[runtime.device] if on_cuda else None,
                                       gradient_as_bucket_view=True)

    def _fresh_state(self, data: PreparedData, runtime: Runtime) -> dict[str, Any]:
        cfg = self.cfg
        tags = {**run_tags(cfg, self.digest, runtime, self.rank, self.backend), **self.extra_tags}
        return {
            "config_hash": self.digest, "tracking_uri": self.uri, "experiment": cfg.tracking.experiment,
            "run_name": cfg.tracking.run_name or default_run_name(cfg), "parent_run_id": self.parent_run_id,
            "run_id": None, "status": RunStatus.RUNNING, "tags": tags,
            "params": {**cfg.flat(), P_REALISED_NOISE_RATE: data.noisy.rate, **data.noisy.provenance,
                       P_TRAIN_SIZE: len(data.train_idx), P_VAL_SIZE: len(data.val_idx)},
            "datasets": [record.__dict__ for record in dataset_records(cfg, data)], "history": [], "synced_step": 0,
        }

    def _write_start_artifacts(self, data: PreparedData) -> None:
        from ..plotting.run import plot_matrix  # matplotlib only when a figure is drawn

        folder = self.run_dir / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(to_yaml(self.cfg))
        np.savetxt(folder / "transition.csv", data.noisy.transition, delimiter=",", fmt="%.6f")
        plot_matrix(data.noisy.transition, folder / "transition.png",
                    f"realised noise {self.cfg.noise.spec}: {100 * data.noisy.rate:.1f}% of all labels flipped",
                    "noisy label", "true label")

    # -- run files -----------------------------------------------------------------------------
    def _load_recorder(self) -> RunRecorder | None:
        """The run folder's state; an unreadable state.json marks the tracked run FAILED and is set aside."""
        try:
            return RunRecorder.load(self.run_dir, self.tracker)
        except RunFileCorrupt as err:
            reason = f"{STATE_FILE} unreadable: {err}"
            helper = RunRecorder(self.run_dir, self.tracker, {})
            helper.attempt("marking the run FAILED", lambda: self._fail_tracked_runs(reason))
            cause = err.__cause__
            failure = set_aside(self.run_dir / STATE_FILE, f"{type(cause).__name__}: {cause}")
            (self.run_dir / CHECKPOINT).unlink(missing_ok=True)  # its epochs are not trusted without their state
            raise failure from None

    def _fail_tracked_runs(self, reason: str) -> None:
        """End FAILED the tracked runs of this config left RUNNING or KILLED (resumable) in the experiment:
        their state is lost, so none of them can be resumed."""
        assert self.tracker is not None
        for record in self.tracker.find_runs(self.cfg.tracking.experiment, {T.CONFIG_HASH: self.digest}):
            if record.status in (RunStatus.RUNNING, RunStatus.KILLED):
                self.tracker.set_tags(record.run_id, {T.FAILURE_REASON: reason})
                self.tracker.end_run(record.run_id, RunStatus.FAILED)

    def _load_checkpoint(self, recorder: RunRecorder) -> dict[str, Any] | None:
        """The last checkpoint; an unreadable one fails the run (FAILED, retried from scratch by a re-run)."""
        path = self.run_dir / CHECKPOINT
        try:
            return load_checkpoint(path)
        except Exception as err:  # torch.load's failures on a damaged file have no common type
            failure = set_aside(path, f"{type(err).__name__}: {' '.join(str(err).split())[:200]}")
            self._fail(recorder, failure)
            raise failure from None

    def _fail(self, recorder: RunRecorder, err: RunFailed) -> None:
        """Mark the run FAILED with its reason, here and in the tracker; a re-run starts it from scratch."""
        recorder.state.update(status=RunStatus.FAILED, end_tags={T.FAILURE_REASON: str(err)})
        (self.run_dir / CHECKPOINT).unlink(missing_ok=True)
        recorder.save()
        self._finish_sync(recorder)

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> RunResult | None:
        """Check the inputs, claim the run folder (one trainer per run: RunClaimed if another process
        trains it), then train, resume or skip the run. A rank other than 0 follows rank 0 and returns None."""
        if self.rank.distributed:
            return self._run_rank()
        runtime = select_runtime(self.cfg.runtime)
        data = prepare_data(self.cfg)  # a missing or bad dataset fails here, before the tracker is touched
        return self._claim_and_run(runtime, data)

    def _claim_and_run(self, runtime: Runtime, data: PreparedData) -> RunResult:
        if self.tracker is not None:
            self.tracker.check()  # fail fast, before any run, claim or checkpoint exists
        with RunClaim(self.run_dir) as claim:
            return self._run(claim, runtime, data)

    def _run_rank(self) -> RunResult | None:
        """One rank of a distributed run. The ranks first agree on whether any failed to set up (a bad
        dataset, device or config): rank 0 then raises the first such error and the others stand down, so
        the error reaches the user whichever rank met it, before the elastic agent stops the group."""
        runtime: Runtime | None = None
        data: PreparedData | None = None
        setup_error: AplabError | None = None
        try:
            check_batch_split(self.cfg.optim.batch_size, self.rank)
            runtime = select_runtime(self.cfg.runtime, self.rank)
            data = prepare_data(self.cfg)
        except AplabError as err:
            setup_error = err
        self.backend = join_group(self.rank, runtime.device if runtime is not None else torch.device("cpu"))
        try:
            error = first_error(setup_error, self.rank)
            if error is not None and self.rank.is_main:
                raise error
            if error is not None:
                return None  # rank 0 reports it
            assert runtime is not None and data is not None
            return self._claim_and_run(runtime, data) if self.rank.is_main else self._follow(runtime, data)
        finally:
            leave_group()

    def _follow(self, runtime: Runtime, data: PreparedData) -> None:
        """A rank other than 0: train the epochs rank 0 decided on, from its checkpoint; nothing is written."""
        plan = from_main(None, self.rank)
        if plan is None:
            return None  # nothing to train (finished earlier)
        engine = self._build(data, runtime)
        train, val, test = make_batches(data, self.cfg, runtime, self.rank)
        start = self._restore_training(engine, train, plan["checkpoint"])
        epochs = self.cfg.optim.epochs
        try:
            for epoch in range(start, epochs + 1):
                engine.epoch(train, val, test, epoch, epochs, confusion=epoch == epochs)
                gather(rng_states(runtime), self.rank)  # rank 0 checkpoints every rank's generators
        except NonFiniteLoss:
            return None  # every rank sees the same summed loss: rank 0 marks the run FAILED and reports it
        return None

    def _run(self, claim: RunClaim, runtime: Runtime, data: PreparedData) -> RunResult:
        cfg = self.cfg
        recorder = self._load_recorder()
        if recorder is not None and recorder.state.get("tracking_uri") != self.uri:
            recorder = None  # same config, another tracking store: a new run
        if recorder is not None and recorder.state["status"] == RunStatus.FINISHED:
            from_main(None, self.rank)  # the other ranks have nothing to do
            recorder.forget_lost_run()
            return self._finish_sync(recorder, skipped=True)
        if recorder is not None and recorder.state["status"] == RunStatus.FAILED:
            self._finish_sync(recorder)  # its FAILED status reaches the tracker before the retry starts
            log.info("run %s FAILED earlier: training it again from scratch", self.run_dir)
            recorder = None

        checkpoint = self._load_checkpoint(recorder) if recorder is not None else None
        from_main({"checkpoint": checkpoint}, self.rank)  # what the other ranks resume from (None: a fresh start)
        engine = self._build(data, runtime)
        train, val, test = make_batches(data, cfg, runtime, self.rank)
        if checkpoint is not None and recorder is not None:
            start = self._restore(engine, train, checkpoint, recorder)
        else:
            killed_before_first_epoch = recorder.run_id if recorder is not None else None
            recorder = RunRecorder(self.run_dir, self.tracker, self._fresh_state(data, runtime))
            recorder.state["run_id"] = killed_before_first_epoch  # reuse its tracked run, if it made one
            self._write_start_artifacts(data)
            start = self._restore_training(engine, train, None)
            if self.tracker is not None and not recorder.ensure_run():
                raise TrackingUnavailable(f"could not create a run in {self.uri}; see the warning above")
            recorder.save()

        monitor = self._start_system_metrics(recorder, resumed=start > 1)
        epochs = cfg.optim.epochs
        bar = tqdm(range(start, epochs + 1), desc=recorder.state["run_name"], unit="epoch", initial=start - 1,
                   total=epochs, disable=None if self.progress else True, leave=False, file=sys.stderr)  # None: no bar off a TTY
        matrix = None
        try:
            for epoch in bar:
                metrics, matrix = engine.epoch(train, val, test, epoch, epochs, confusion=epoch == epochs)
                recorder.state["history"].append({"epoch": epoch, **metrics})
                self._checkpoint(engine, train, recorder, epoch, gather(rng_states(runtime), self.rank))
                if recorder.ensure_run():
                    recorder.push_pending()
                recorder.save()
                claim.refresh()  # the heartbeat other hosts sharing the run folder go by
                if self.progress:
                    bar.write(summary_line(epoch, epochs, metrics), file=sys.stderr)
                if self.on_epoch is not None:
                    self.on_epoch(epoch, metrics)
        except NonFiniteLoss as err:
            failure = NonFiniteLoss(err.loss, err.epoch, self.run_dir)
            self._fail(recorder, failure)
            raise failure from None
        except KeyboardInterrupt:  # the tracker shows KILLED; the same command resumes (and sets RUNNING)
            if recorder.run_id is not None:
                recorder.attempt("status", lambda: self.tracker.end_run(recorder.run_id, RunStatus.KILLED))
            raise
        finally:
            bar.close()
            if monitor is not None:
                stop_monitor(monitor)
        self._finalise(engine, recorder, matrix)
        return self._finish_sync(recorder)

    def _start_system_metrics(self, recorder: RunRecorder, resumed: bool) -> object | None:
        """MLflow's system-metrics sampler for the run; on resume its steps continue after the last one logged."""
        if not self.cfg.tracking.system_metrics or self.tracker is None or recorder.run_id is None:
            return None
        tracker, run_id = self.tracker, recorder.run_id
        first_step = 0
        if resumed:
            reached, history = recorder.fetch("system metrics", lambda: tracker.metric_history(run_id, M.SYSTEM_CPU))
            if not reached:
                return None
            first_step = max((step for step, _ in history), default=-1) + 1
        return recorder.fetch("system metrics", lambda: tracker.start_system_metrics(run_id, first_step=first_step))[1]

    def _checkpoint(self, engine: Engine, train, recorder: RunRecorder, epoch: int,
                    rank_rngs: list[dict[str, Any]]) -> None:
        """The plain module's state (no DDP wrapper) and every rank's generators, by rank 0 alone."""
        state = {
            "epoch": epoch, "model": engine.model.state_dict(), "optimizer": engine.optimizer.state_dict(),
            "scheduler": engine.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
            "data_rng": train.generator.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "rank_rngs": rank_rngs, "history": recorder.state["history"],
        }
        save_checkpoint(self.run_dir / CHECKPOINT, state)  # atomic: the previous one stays until this one is whole

    def _restore_training(self, engine: Engine, train, checkpoint: dict[str, Any] | None) -> int:
        """Seed a fresh start, or load the checkpoint's model, optimizer, schedule and generators (on every
        rank); the first epoch to train. Each rank takes back its own generators when the world size is the
        checkpoint's, else rank 0's (the data order is every rank's alike), reseeded from it on other ranks."""
        if checkpoint is None:
            train.seed(self.cfg.runtime.seed)
            return 1
        engine.model.load_state_dict(checkpoint["model"])
        engine.optimizer.load_state_dict(checkpoint["optimizer"])
        engine.scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["torch_rng"])
        train.generator.set_state(checkpoint["data_rng"])
        if checkpoint.get("cuda_rng") is not None and torch.cuda.is_available() and not self.rank.distributed:
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        ranks = checkpoint.get("rank_rngs", [])
        if len(ranks) == self.rank.world_size:
            restore_rng_states(ranks[self.rank.rank], engine.runtime)
        elif not self.rank.is_main:  # rank 0's generator, as every rank's: each other rank then draws its own
            seed_rank(int(torch.randint(2**62, (1,))), self.rank)
        return checkpoint["epoch"] + 1

    def _restore(self, engine: Engine, train, checkpoint: dict[str, Any], recorder: RunRecorder) -> int:
        start = self._restore_training(engine, train, checkpoint)
        recorder.state["history"] = checkpoint["history"]  # epochs after the checkpoint are run again
        recorder.forget_lost_run()
        recorder.reconcile()
        where = where_tags(engine.runtime, self.rank, self.backend)
        recorder.state["tags"].update(where)  # a run the store lost is made again with them
        if recorder.run_id is not None:
            recorder.attempt("resume", lambda: recorder.tracker.resume_run(recorder.run_id))
            recorder.attempt("tags", lambda: recorder.tracker.set_tags(recorder.run_id, where))
        log.info("resuming %s at epoch %d", recorder.state["run_name"], start)
        return start

    def _finalise(self, engine: Engine, recorder: RunRecorder, matrix) -> None:
        from ..plotting.run import plot_curves, plot_matrix  # matplotlib only when a figure is drawn

        history = recorder.state["history"]
        folder = self.run_dir / "artifacts"
        recorder.state["summary"] = run_summary(history)
        with open(folder / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        plot_curves(history, folder / "curves.png", recorder.state["run_name"])
        if matrix is not None:
            plot_matrix(matrix.cpu().numpy(), folder / "confusion.png", "test confusion matrix (last epoch)",
                        "predicted", "true", fmt="d")
        if self.cfg.tracking.log_model:  # sent to the tracker as a LoggedModel with the artifacts
            atomic_write_bytes(self.run_dir / MODEL_FILE, lambda handle: torch.save(engine.model, handle))
        recorder.state["status"] = RunStatus.FINISHED
        recorder.save()
        (self.run_dir / CHECKPOINT).unlink(missing_ok=True)

    def _finish_sync(self, recorder: RunRecorder, skipped: bool = False) -> RunResult:
        """Deliver whatever the tracker has not seen yet (metrics, artifacts, final status)."""
        if recorder.ensure_run():
            recorder.push_pending() and recorder.push_artifacts() and recorder.push_end()
        recorder.save()
        return result_of(recorder, skipped)


def set_aside(path: Path, problem: str) -> RunFileCorrupt:
    """Keep an unreadable run file as ``<name>.corrupt`` and say so in one line: the run is marked FAILED, and
    the same command trains it again from scratch."""
    path.replace(path.with_name(path.name + ".corrupt"))
    return RunFileCorrupt(path, f"truncated or corrupt: {problem}", f"the run is marked FAILED and the file kept as "
                          f"{path.name}.corrupt; run the same command again to train it from scratch")


def rng_states(runtime: Runtime) -> dict[str, Any]:
    """This rank's torch generators (CPU, and its CUDA device's) for the checkpoint."""
    cuda = torch.cuda.get_rng_state(runtime.device) if runtime.device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def restore_rng_states(states: dict[str, Any], runtime: Runtime) -> None:
    torch.set_rng_state(states["cpu"])
    if states["cuda"] is not None and runtime.device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], runtime.device)


def stop_monitor(monitor) -> None:
    """Stop the system-metrics sampler; its last delivery failing is not news of the tracking server."""
    try:
        monitor.finish()
    except Exception as err:  # MLflow's monitor raises whatever its last push met
        log.debug("system metrics monitor: %s", err)


def train(cfg: RunConfig, tracker: Tracker | None = None, **kwargs) -> RunResult | None:
    """Train (or resume, or skip if finished, or retry from scratch if FAILED) one run; resolves the config once.

    The tracker defaults to the config's URI. Raises RunFailed (NonFiniteLoss, RunFileCorrupt) after
    marking the run FAILED; the same call then trains it again from scratch.

    Distributed: in a process torchrun started (RANK, WORLD_SIZE set) this is one rank of the run, and
    ranks other than 0 return None. Otherwise ``runtime.nproc_per_node > 1`` launches that many ranks
    here (PyTorch's elastic launcher) and returns rank 0's result: rank 0 rebuilds the tracker from its
    URI, ``on_epoch`` is called here with rank 0's epochs (what it raises stops the run as it would in
    one process), ``extra_tags``, ``run_dir``, ``parent_run_id`` and ``progress`` reach rank 0.
    """
    resolved = resolve(cfg)
    rank = rank_from_environment()
    if rank is None and resolved.runtime.nproc_per_node > 1:
        from .launch import launch

        uri = None if resolved.tracking.offline else (tracker.uri if tracker is not None else default_uri(
            resolved.tracking.uri))
        return launch(resolved, uri, **kwargs)
    rank = rank or SINGLE
    if rank.distributed and ELASTIC_AGENT in os.environ:
        die_with_parent()  # torchrun's agent stops the group when a rank dies; this rank dies with the agent
    if not rank.is_main:
        tracker = None  # rank 0 alone talks to the tracker
        kwargs["progress"] = False
    elif tracker is None and not resolved.tracking.offline:
        tracker = make_tracker(resolved.tracking.uri)
    return TrainingRun(resolved, tracker, rank=rank, **kwargs).run()


class RunOfAnotherStore(ConfigError):
    """The run folder's run lives in another tracking store than the one asked for."""


def sync(run_dir: Path, tracker: Tracker) -> RunResult:
    """Push a run made offline (or during an outage, or lost with its store) to a tracker: run, metrics,
    artifacts, model, status. A run the store no longer holds is created again there."""
    recorder = RunRecorder.load(run_dir, tracker)
    if recorder is None:
        raise ConfigError("run folder", str(run_dir), "a folder with a state.json written by aplab train")
    home = recorder.state.get("tracking_uri")
    if recorder.run_id is not None and home != tracker.uri:
        raise RunOfAnotherStore("--tracking-uri", tracker.uri, f"{home}, the store that holds run {recorder.run_id}")
    tracker.check()
    recorder.state["tracking_uri"] = tracker.uri
    recorder.forget_lost_run()
    if recorder.ensure_run():
        done = recorder.push_pending()
        if recorder.state["status"] in (RunStatus.FINISHED, RunStatus.FAILED) and done:
            recorder.push_artifacts() and recorder.push_end()
    recorder.save()
    return result_of(recorder)


def result_of(recorder: RunRecorder, skipped: bool = False) -> RunResult:
    state = recorder.state
    status = RunStatus.SKIPPED if skipped else RunStatus(state["status"])
    return RunResult(status, state.get("run_id"), state["config_hash"], recorder.run_dir, state.get("summary", {}),
                     state["history"], synced=bool(state.get("end_synced")))
