"""Training: the engine, the one-way data preparation, checkpoints, and a whole tracked run."""

from __future__ import annotations

from .engine import Engine, NonFiniteLoss
from .run import RunResult, TrainingRun, sync, train

__all__ = ["Engine", "NonFiniteLoss", "RunResult", "TrainingRun", "sync", "train"]
