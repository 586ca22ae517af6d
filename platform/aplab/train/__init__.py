"""Training: the engine, the one-way data preparation, checkpoints, and a whole tracked run, a stack of runs."""

from __future__ import annotations

from ..status import RunStatus
from .engine import Engine, NonFiniteLoss
from .entry import train
from .result import RunResult
from .run import TrainingRun
from .stack import train_stack
from .sync import sync

__all__ = ["Engine", "NonFiniteLoss", "RunResult", "RunStatus", "TrainingRun", "sync", "train", "train_stack"]
