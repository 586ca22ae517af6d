"""A run's files beside its metrics: the config and realised noise at its start; at its end the summary,
metrics.csv, the curves and confusion plots and the final model (all sent to the tracker with the run)."""

from __future__ import annotations

import csv

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..config import RunConfig, to_yaml
from ..keys import M
from ..status import RunStatus
from .context import RunContext
from .engine import Engine
from .prepare import PreparedData
from .recorder import MODEL_FILE, RunRecorder
from .resume import CHECKPOINT

ARTIFACTS = "artifacts"


def write_start_artifacts(run_dir, cfg: RunConfig, data: PreparedData) -> None:
    from ..plotting.run import plot_matrix  # matplotlib only when a figure is drawn

    folder = run_dir / ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(to_yaml(cfg))
    np.savetxt(folder / "transition.csv", data.noisy.transition, delimiter=",", fmt="%.6f")
    plot_matrix(data.noisy.transition, folder / "transition.png",
                f"realised noise {cfg.noise.spec}: {100 * data.noisy.rate:.1f}% of all labels flipped",
                "noisy label", "true label")


#: The end-of-run metrics (logged once, at the last epoch) besides the per-class accuracies.
SUMMARY_METRICS = frozenset({M.TEST_ACC_LAST, M.TEST_ACC_BEST, M.BEST_TEST_EPOCH, M.TEST_ACC_BEST_VAL,
                             M.VAL_ACC_BEST, M.BEST_VAL_EPOCH, M.VAL_ACC_LAST})


def is_summary_metric(key: str) -> bool:
    """Whether ``key`` is one of a run's end-of-run metrics (``run_summary``, ``class_accuracies``)."""
    return key in SUMMARY_METRICS or key.startswith(f"{M.TEST_ACC_CLASS}/")


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


def class_accuracies(matrix: np.ndarray) -> dict[str, float]:
    """``{test/acc_class/<k>: accuracy}`` from the last epoch's test confusion matrix (rows: true class), so a
    report can tell a run that never predicts some class (its accuracy there 0) from the store alone."""
    sizes = matrix.sum(axis=1)
    return {f"{M.TEST_ACC_CLASS}/{k}": float(matrix[k, k] / sizes[k]) for k in range(len(sizes)) if sizes[k]}


def finalise(ctx: RunContext, engine: Engine, recorder: RunRecorder, matrix) -> None:
    """The end of training: summary, files and model first, FINISHED last, then the checkpoint goes."""
    from ..plotting.run import plot_curves, plot_matrix  # matplotlib only when a figure is drawn

    history = recorder.state.history
    folder = ctx.run_dir / ARTIFACTS
    recorder.state.summary = run_summary(history)
    if matrix is not None:
        recorder.state.summary.update(class_accuracies(matrix.cpu().numpy()))
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    plot_curves(history, folder / "curves.png", recorder.state.run_name)
    if matrix is not None:
        plot_matrix(matrix.cpu().numpy(), folder / "confusion.png", "test confusion matrix (last epoch)",
                    "predicted", "true", fmt="d")
    if ctx.cfg.tracking.log_model:  # sent to the tracker as a LoggedModel with the artifacts
        atomic_write_bytes(ctx.run_dir / MODEL_FILE, lambda handle: torch.save(engine.model, handle))
    recorder.state.status = RunStatus.FINISHED
    recorder.save()
    (ctx.run_dir / CHECKPOINT).unlink(missing_ok=True)
