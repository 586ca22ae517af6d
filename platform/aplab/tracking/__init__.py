"""Tracking: the Tracker interface, an in-memory twin, and MLflow behind ``make_tracker``."""

from __future__ import annotations

import os
from pathlib import Path

from .base import DatasetRecord, MemoryTracker, RunRecord, Tracker

__all__ = ["DatasetRecord", "MemoryTracker", "RunRecord", "Tracker", "default_uri", "make_tracker"]


def default_uri(uri: str | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else a SQLite ``mlflow.db`` in the working directory."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def make_tracker(uri: str | None = None) -> Tracker:
    """A Tracker for a URI; ``memory://`` gives the in-memory one."""
    resolved = default_uri(uri)
    if resolved.startswith("memory://"):
        return MemoryTracker()
    from .mlflow_tracker import MlflowTracker

    return MlflowTracker(resolved)
