"""Where many runs execute: the executor protocol and registry (``base``), and every executor, each one
module that registers itself: ``local`` (worker processes here) and ``slurm`` (job arrays)."""

from . import local, slurm
from .base import EXECUTORS, Executor, PipelineLaunch, WorkerRequest, executor

__all__ = ["EXECUTORS", "Executor", "PipelineLaunch", "WorkerRequest", "executor", "local", "slurm"]
