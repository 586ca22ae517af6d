"""What aplab uses of MLflow beyond ``MlflowClient`` and ``mlflow.entities``, in one place.

Each use says why no public API does the job and the MLflow version it was checked against (3.17.2, the
version installed; ``tests/test_tracking_store.py`` covers each, so an upgrade that changes one fails
there). The logger names ``quiet.py`` filters are MLflow module paths too (checked against the same version).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

#: The REST API's error code of a missing run or experiment. Public: ``MlflowException.error_code`` is
#: the code's name as a string (MLflow's REST error codes), so no protobuf enum is imported to compare it.
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"


def is_missing(err: MlflowException) -> bool:
    """Whether MLflow raised ``err`` because the run (or experiment) asked for does not exist."""
    return err.error_code == RESOURCE_DOES_NOT_EXIST


def is_duplicate_row(err: MlflowException) -> bool:
    """Whether a SQL store refused a row another writer inserted first (a unique key), e.g. two processes
    logging the same new dataset into one experiment: MLflow reads, then inserts, without a lock.

    Internal: MLflow 3.17.2 passes the database's IntegrityError on as BAD_REQUEST with its text only, so the
    text is read (PostgreSQL "duplicate key value", SQLite "UNIQUE constraint failed").
    """
    text = str(err.message)
    return "duplicate key value" in text or "UNIQUE constraint failed" in text


def default_artifacts() -> str:
    """Where MLflow puts the Default experiment's artifacts for a store created from here (``./mlruns/0``).

    Internal: ``mlflow.store.tracking.DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH`` (MLflow 3.17.2: "./mlruns"),
    read rather than copied so that a store made from aplab's template matches one MLflow made itself.
    """
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH

    return str(Path(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH).resolve() / "0")


def adopt_default_experiment(db: Path, artifact_location: str | None = None) -> None:
    """Make a copied store's Default experiment (id 0) its own: this store's artifact location and now.

    Internal: one SQL statement on MLflow's ``experiments`` table (columns ``artifact_location``,
    ``creation_time``, ``last_update_time``, checked against MLflow 3.17.2's schema). MLflow has no API to
    change an experiment's artifact location or creation time, and a copy of the template must not keep
    the template's (``sqlite_store.copy_template``).
    """
    location = artifact_location or default_artifacts()
    now = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                           "WHERE experiment_id = 0", (location, now, now))


def system_metrics_monitor(run_id: str, tracking_uri: str, resume: bool) -> Any | None:
    """A started sampler of CPU/GPU/memory into ``run_id`` every 10 s; None without psutil.

    Internal: ``mlflow.system_metrics.system_metrics_monitor.SystemMetricsMonitor`` (MLflow 3.17.2:
    ``SystemMetricsMonitor(run_id, resume_logging=, tracking_uri=)``, ``start()``, ``finish()``). MLflow's
    public way, ``mlflow.start_run(log_system_metrics=True)``, needs the fluent active run and the global
    tracking URI, which aplab never sets (explicit run ids work from any thread or process). ``resume``
    continues after the last system-metric step the store holds instead of writing over steps from 0.
    """
    try:
        import psutil  # noqa: F401
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:
        return None
    monitor = SystemMetricsMonitor(run_id, resume_logging=resume, tracking_uri=tracking_uri)
    monitor.start()
    return monitor


__all__ = ["RESOURCE_DOES_NOT_EXIST", "adopt_default_experiment", "default_artifacts", "is_duplicate_row", "is_missing",
           "system_metrics_monitor"]
