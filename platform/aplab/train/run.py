"""One training run end to end: resolved config -> data -> engine -> local state and tracker.

The run folder (``<workdir>/<experiment>/<config hash>``) holds the atomic checkpoint and state.json:
re-running the same command after a crash resumes into the same tracked run from the last epoch.
"""

from __future__ import annotations

import csv
import functools
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__, losses
from ..config import RunConfig, config_hash, loss_kwargs, to_yaml
from ..resolution import resolve
from ..errors import ConfigError, TrackingUnavailable
from ..models import build_model, float32_head
from ..report.run_plots import plot_curves, plot_matrix
from ..tracking import DatasetRecord, Tracker, default_uri, make_tracker
from .checkpoint import load_checkpoint, save_checkpoint
from .engine import Engine, NonFiniteLoss
from .prepare import PreparedData, make_batches, prepare_data
from .recorder import RunRecorder
from .runtime import Runtime, seed_everything, select_runtime

CHECKPOINT = "checkpoint.pt"


@dataclass
class RunResult:
    status: str  # FINISHED, FAILED or SKIPPED (already finished earlier)
    run_id: str | None
    config_hash: str
    run_dir: Path
    summary: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    synced: bool = True  # False while the tracker has not received everything (see `aplab sync`)


@functools.cache
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def run_tags(cfg: RunConfig, digest: str, runtime: Runtime) -> dict[str, str]:
    return {
        "dataset": cfg.data.name, "model": str(cfg.model.name), "loss": cfg.loss.name, "noise": cfg.noise.spec,
        "seed": str(cfg.runtime.seed), "fidelity": cfg.loss.fidelity, "config_hash": digest,
        "code_version": code_version(), "val_labels": "clean" if cfg.data.clean_val else "noisy",
        "precision": runtime.precision, "device": str(runtime.device),
    }


def default_run_name(cfg: RunConfig) -> str:
    return f"{cfg.data.name}-{cfg.loss.name}-{cfg.noise.spec}-s{cfg.runtime.seed}"


def summary_line(epoch: int, epochs: int, m: dict[str, float]) -> str:
    val = f" val {100 * m['val/acc']:5.1f}%" if "val/acc" in m else ""
    return (f"epoch {epoch:>3}/{epochs}  loss {m['train/loss']:.4f}  train {100 * m['train/acc_noisy']:5.1f}% noisy"
            f" {100 * m['train/acc_clean']:5.1f}% clean  memorised {100 * m['train/memorised']:5.1f}%{val}"
            f"  test {100 * m['test/acc']:5.1f}%  lr {m['lr']:.4g}  {m['time/epoch_s']:.1f}s"
            f" {m['time/images_per_s']:,.0f} img/s")


class TrainingRun:
    """Builds everything for one resolved config and runs (or resumes) it."""

    def __init__(self, cfg: RunConfig, tracker: Tracker | None, run_dir: Path | None = None,
                 parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None,
                 progress: bool = True, on_epoch: Callable[[int, dict[str, float]], None] | None = None):
        self.cfg = resolve(cfg)
        self.digest = config_hash(self.cfg)
        self.tracker = tracker
        self.uri = tracker.uri if tracker is not None else default_uri(self.cfg.tracking.uri)
        self.run_dir = run_dir or Path(self.cfg.tracking.workdir) / self.cfg.tracking.experiment / self.digest
        self.parent_run_id = parent_run_id
        self.extra_tags = extra_tags or {}
        self.progress = progress
        self.on_epoch = on_epoch

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
        schedules = {
            "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.optim.epochs),
            "exponential": lambda: torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.optim.lr_decay),
            "constant": lambda: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0),
        }
        scheduler = schedules[cfg.optim.schedule]()
        compiled = torch.compile(model) if cfg.runtime.compile else None
        return Engine(model, loss_fn, optimizer, scheduler, runtime, cfg.optim.grad_clip, dataset.num_classes, compiled)

    def _fresh_state(self, data: PreparedData, runtime: Runtime) -> dict[str, Any]:
        cfg = self.cfg
        tags = {**run_tags(cfg, self.digest, runtime), **self.extra_tags}
        dataset = DatasetRecord(name=f"{cfg.data.name}-train-{cfg.noise.spec}", digest=data.labels_digest,
                                source=f"aplab:{cfg.data.name}", num_rows=int(data.noisy.labels.size))
        return {
            "config_hash": self.digest, "tracking_uri": self.uri, "experiment": cfg.tracking.experiment,
            "run_name": cfg.tracking.run_name or default_run_name(cfg), "parent_run_id": self.parent_run_id,
            "run_id": None, "status": "RUNNING", "tags": tags,
            "params": {**cfg.flat(), "noise.realised_rate": data.noisy.rate, "data.train_size": len(data.train_idx),
                       "data.val_size": len(data.val_idx)},
            "dataset": dataset.__dict__, "history": [], "synced_step": 0,
        }

    def _write_start_artifacts(self, data: PreparedData) -> None:
        folder = self.run_dir / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(to_yaml(self.cfg))
        np.savetxt(folder / "transition.csv", data.noisy.transition, delimiter=",", fmt="%.6f")
        plot_matrix(data.noisy.transition, folder / "transition.png",
                    f"realised noise {self.cfg.noise.spec}: {100 * data.noisy.rate:.1f}% of all labels flipped",
                    "noisy label", "true label")

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> RunResult:
        cfg = self.cfg
        runtime = select_runtime(cfg.runtime)
        data = prepare_data(cfg)  # a missing or bad dataset fails here, before the tracker is touched
        if self.tracker is not None:
            self.tracker.check()  # fail fast, before any run or checkpoint exists
        recorder = RunRecorder.load(self.run_dir, self.tracker)
        if recorder is not None and recorder.state.get("tracking_uri") != self.uri:
            recorder = None  # same config, another tracking store: a new run
        if recorder is not None and recorder.state["status"] in ("FINISHED", "FAILED"):
            return self._finish_sync(recorder, skipped=True)

        engine = self._build(data, runtime)
        train, val, test = make_batches(data, cfg, runtime)
        checkpoint = load_checkpoint(self.run_dir / CHECKPOINT) if recorder is not None else None
        if checkpoint is not None and recorder is not None:
            start = self._restore(engine, train, checkpoint, recorder)
        else:
            killed_before_first_epoch = recorder.run_id if recorder is not None else None
            recorder = RunRecorder(self.run_dir, self.tracker, self._fresh_state(data, runtime))
            recorder.state["run_id"] = killed_before_first_epoch  # reuse its tracked run, if it made one
            self._write_start_artifacts(data)
            train.seed(cfg.runtime.seed)
            start = 1
            if self.tracker is not None and not recorder.ensure_run():
                raise TrackingUnavailable(f"could not create a run in {self.uri}; see the warning above")
            recorder.save()

        monitors: list = []
        if cfg.tracking.system_metrics and self.tracker is not None and recorder.run_id is not None:
            recorder.attempt("system metrics", lambda: monitors.append(self.tracker.start_system_metrics(recorder.run_id)))
        epochs = cfg.optim.epochs
        bar = tqdm(range(start, epochs + 1), desc=recorder.state["run_name"], unit="epoch", initial=start - 1,
                   total=epochs, disable=None if self.progress else True, leave=False, file=sys.stderr)  # None: no bar off a TTY
        matrix = None
        try:
            for epoch in bar:
                metrics, matrix = engine.epoch(train, val, test, epoch, epochs, confusion=epoch == epochs)
                recorder.state["history"].append({"epoch": epoch, **metrics})
                self._checkpoint(engine, train, recorder, epoch)
                if recorder.ensure_run():
                    recorder.push_pending()
                recorder.save()
                if self.progress:
                    bar.write(summary_line(epoch, epochs, metrics), file=sys.stderr)
                if self.on_epoch is not None:
                    self.on_epoch(epoch, metrics)
        except NonFiniteLoss as err:
            recorder.state.update(status="FAILED", end_tags={"failure_reason": str(err)})
            recorder.save()
            self._finish_sync(recorder)
            raise
        except KeyboardInterrupt:  # the tracker shows KILLED; the same command resumes (and sets RUNNING)
            if recorder.run_id is not None:
                recorder.attempt("status", lambda: self.tracker.end_run(recorder.run_id, "KILLED"))
            raise
        finally:
            bar.close()
            for monitor in filter(None, monitors):
                recorder.attempt("system metrics", monitor.finish)
        self._finalise(engine, recorder, matrix, data)
        return self._finish_sync(recorder)

    def _checkpoint(self, engine: Engine, train, recorder: RunRecorder, epoch: int) -> None:
        state = {
            "epoch": epoch, "model": engine.model.state_dict(), "optimizer": engine.optimizer.state_dict(),
            "scheduler": engine.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
            "data_rng": train.generator.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": recorder.state["history"],
        }
        save_checkpoint(self.run_dir / CHECKPOINT, state)

    def _restore(self, engine: Engine, train, checkpoint: dict[str, Any], recorder: RunRecorder) -> int:
        engine.model.load_state_dict(checkpoint["model"])
        engine.optimizer.load_state_dict(checkpoint["optimizer"])
        engine.scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["torch_rng"])
        train.generator.set_state(checkpoint["data_rng"])
        if checkpoint.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        recorder.state["history"] = checkpoint["history"]  # epochs after the checkpoint are run again
        recorder.reconcile()
        if recorder.run_id is not None:
            recorder.attempt("resume", lambda: recorder.tracker.resume_run(recorder.run_id))
        print(f"[aplab] resuming {recorder.state['run_name']} at epoch {checkpoint['epoch'] + 1}", file=sys.stderr)
        return checkpoint["epoch"] + 1

    def _finalise(self, engine: Engine, recorder: RunRecorder, matrix, data: PreparedData) -> None:
        history = recorder.state["history"]
        folder = self.run_dir / "artifacts"
        top = max(history, key=lambda row: row["test/acc"])  # the "best epoch" many later papers report
        summary = {"test/acc_last": history[-1]["test/acc"], "test/acc_best": top["test/acc"],
                   "best_test_epoch": float(top["epoch"])}
        if "val/acc" in history[0]:
            best = max(history, key=lambda row: row["val/acc"])  # first epoch among ties
            summary.update({"test/acc_best_val": best["test/acc"], "val/acc_best": best["val/acc"],
                            "best_val_epoch": float(best["epoch"]), "val/acc_last": history[-1]["val/acc"]})
        recorder.state["summary"] = summary
        with open(folder / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        plot_curves(history, folder / "curves.png", recorder.state["run_name"])
        if matrix is not None:
            confusion = matrix.cpu().numpy()
            plot_matrix(confusion, folder / "confusion.png", "test confusion matrix (last epoch)",
                        "predicted", "true", fmt="d")
        if self.cfg.tracking.log_model:
            (folder / "model").mkdir(exist_ok=True)
            torch.save(engine.model.state_dict(), folder / "model" / "state_dict.pt")
        recorder.state["status"] = "FINISHED"
        recorder.save()
        (self.run_dir / CHECKPOINT).unlink(missing_ok=True)

    def _finish_sync(self, recorder: RunRecorder, skipped: bool = False) -> RunResult:
        """Deliver whatever the tracker has not seen yet (metrics, artifacts, final status)."""
        if recorder.ensure_run():
            recorder.push_pending() and recorder.push_artifacts() and recorder.push_end()
        recorder.save()
        return result_of(recorder, skipped)


def train(cfg: RunConfig, tracker: Tracker | None = None, **kwargs) -> RunResult:
    """Train (or resume, or skip if finished) one run; the tracker defaults to the config's URI."""
    resolved = resolve(cfg)
    if tracker is None and not resolved.tracking.offline:
        tracker = make_tracker(resolved.tracking.uri)
    return TrainingRun(resolved, tracker, **kwargs).run()


class RunOfAnotherStore(ConfigError):
    """The run folder's run lives in another tracking store than the one asked for."""


def sync(run_dir: Path, tracker: Tracker) -> RunResult:
    """Push a run made offline (or during an outage) to a tracker: run, metrics, artifacts, status."""
    recorder = RunRecorder.load(run_dir, tracker)
    if recorder is None:
        raise ConfigError("run folder", str(run_dir), "a folder with a state.json written by aplab train")
    home = recorder.state.get("tracking_uri")
    if recorder.run_id is not None and home != tracker.uri:
        raise RunOfAnotherStore("--tracking-uri", tracker.uri, f"{home}, the store that holds run {recorder.run_id}")
    tracker.check()
    recorder.state["tracking_uri"] = tracker.uri
    if recorder.ensure_run():
        done = recorder.push_pending()
        if recorder.state["status"] in ("FINISHED", "FAILED") and done:
            recorder.push_artifacts() and recorder.push_end()
    recorder.save()
    return result_of(recorder)


def result_of(recorder: RunRecorder, skipped: bool = False) -> RunResult:
    state = recorder.state
    return RunResult("SKIPPED" if skipped else state["status"], state.get("run_id"), state["config_hash"],
                     recorder.run_dir, state.get("summary", {}), state["history"], synced=bool(state.get("end_synced")))
