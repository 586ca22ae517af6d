"""Keep MLflow's own logging to what a user of aplab needs: no traceback storms during an outage.

When a SQLite store vanishes mid-run, MLflow logs every failed call at ERROR with its full SQLAlchemy
traceback (24 of them in a run, ~1,100 lines) although the same error is raised to aplab, which
reports the outage in one line. A filter on the few MLflow loggers concerned drops those records,
MLflow's routine INFO chatter (schema migrations, system-metrics start) and a warning about a choice
aplab makes on purpose. It is installed when a tracker is made, not at import, and touches no
level, handler or environment variable.
"""

from __future__ import annotations

import logging

#: Logger -> (the lowest level still shown, message beginnings dropped at any level). The names are MLflow's
#: module paths and the messages its own (checked against MLflow 3.17.2; ``tests/test_tracking.py`` covers them).
QUIETED = {
    # INFO "Creating initial MLflow database tables..."; ERROR with a traceback, then raised to aplab.
    "mlflow.store.db.utils": (logging.WARNING, ("SQLAlchemy database error",)),
    # Best effort: everything it says (failed to get the run, failed to log) repeats an outage.
    "mlflow.system_metrics.system_metrics_monitor": (logging.CRITICAL + 1, ()),
    # aplab saves its models pickled on purpose (MLflow's "pt2" needs an input example): one warning a run.
    "mlflow.pytorch": (logging.NOTSET, ("Saving pytorch model by Pickle",)),
}


class StoreNoiseFilter(logging.Filter):
    """Drops a record below the logger's threshold, or one that begins with a dropped message."""

    def __init__(self, threshold: int, dropped: tuple[str, ...]):
        super().__init__()
        self.threshold, self.dropped = threshold, dropped

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.threshold and not str(record.msg).startswith(self.dropped)


def quiet_store_errors() -> None:
    """Install the filters once per process (idempotent)."""
    for name, (threshold, dropped) in QUIETED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, StoreNoiseFilter) for f in logger.filters):
            logger.addFilter(StoreNoiseFilter(threshold, dropped))
