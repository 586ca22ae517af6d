"""Tracking: the Tracker interface, an in-memory twin, and MLflow behind ``make_tracker`` (mlflow is imported in
``mlflow_tracker`` and ``mlflow_adapter`` only, what it needs beyond the public API all in the latter)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from .base import MEMORY_URI, DatasetRecord, MemoryTracker, RunRecord, Tracker

__all__ = ["MEMORY_URI", "DatasetRecord", "MemoryTracker", "RunRecord", "Tracker", "default_uri", "is_in_process",
           "make_tracker", "require_shared_store", "same_store", "store_exists", "store_key", "use_short_http_retries"]

#: MLflow's HTTP client settings for aplab's processes: an outage costs seconds per call, not minutes
#: (MLflow's defaults are 7 retries and a 120 s timeout).
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "8",
                       "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


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
    if is_in_process(resolved):
        return MemoryTracker()
    from .mlflow_tracker import MlflowTracker

    return MlflowTracker(resolved)


def store_exists(uri: str) -> bool:
    """Whether a store is there to read without making one: a SQLite URI's file exists (MLflow creates a
    missing one on first use, so a read-only command asks first); other stores are asked by ``check``."""
    if not uri.startswith("sqlite:///"):
        return True
    return Path(uri.removeprefix("sqlite:///")).expanduser().is_file()


def store_key(uri: str | None) -> str | None:
    """What names a store whatever its spelling: a SQLite file by its resolved path (``sqlite:///mlflow.db``
    in /w and ``sqlite:////w/mlflow.db`` are one store), a server URL without its trailing slash."""
    if uri is None:
        return None
    if uri.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).expanduser().resolve())
    return uri.rstrip("/")


def same_store(first: str | None, second: str | None) -> bool:
    """Whether two tracking URIs name the same store."""
    return store_key(first) == store_key(second)


def is_in_process(uri: str | None) -> bool:
    """Whether ``uri`` names the in-memory store, which no other process (worker, rank, Slurm task) reaches."""
    return uri is not None and uri.startswith(MEMORY_URI)


def require_shared_store(uri: str | None, field: str, value: object, allowed: str) -> None:
    """Refuse an in-memory store where another process must reach the runs: ``ConfigError(field, value, allowed)``
    names the setting that needs the other processes (``--workers``, ``runtime.nproc_per_node``, ...)."""
    if is_in_process(uri):
        raise ConfigError(field, value, allowed)


def use_short_http_retries() -> None:
    """Short HTTP retries for this process and its children, unless the user set them.

    MLflow reads them from the environment only, so this writes ``os.environ``: the CLI calls it in
    its own process; importing aplab never does.
    """
    for name, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)
