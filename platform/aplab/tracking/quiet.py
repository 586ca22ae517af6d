"""Keep MLflow's own logging to what a user of aplab needs: no traceback storms during an outage.

When a SQLite store vanishes mid-run, MLflow logs every failed call at ERROR with its full SQLAlchemy
traceback (24 of them in a run, ~1,100 lines) although the same error is raised to aplab, which
reports the outage in one line. A filter on the few MLflow loggers concerned drops those records
and MLflow's routine INFO chatter (schema migrations, system-metrics start). It is installed when a
tracker is made, not at import, and touches no level, handler or environment variable.
"""

from __future__ import annotations

import logging

#: Logger -> the lowest level still shown, and messages dropped at any level (raised to the caller).
QUIETED = {
    "mlflow.store.db.utils": logging.WARNING,  # INFO: "Creating initial MLflow database tables..."
    "mlflow.system_metrics.system_metrics_monitor": logging.CRITICAL + 1,  # best effort: all it says repeats an outage
}
RAISED_ANYWAY = ("SQLAlchemy database error",)  # logged with a traceback, then raised as MlflowException


class StoreNoiseFilter(logging.Filter):
    """Drops a record below the logger's threshold, or one whose error is also raised to the caller."""

    def __init__(self, threshold: int):
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.threshold:
            return False
        return not str(record.msg).startswith(RAISED_ANYWAY)


def quiet_store_errors() -> None:
    """Install the filters once per process (idempotent)."""
    for name, threshold in QUIETED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, StoreNoiseFilter) for f in logger.filters):
            logger.addFilter(StoreNoiseFilter(threshold))
