"""Training: the engine, the one-way data preparation, checkpoints, and a whole tracked run."""

from __future__ import annotations

from .engine import Engine, NonFiniteLoss
from .run import RunResult, TrainingRun, sync, train
from ..status import RunStatus

__all__ = ["Engine", "NonFiniteLoss", "RunResult", "RunStatus", "TrainingRun", "sync", "train"]
