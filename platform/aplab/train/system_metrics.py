"""MLflow's CPU/GPU/memory sampler for a run, continued after the last step logged when the run resumes."""

from __future__ import annotations

import logging

from ..config import RunConfig
from ..keys import M
from ..tracking import Tracker
from .recorder import RunRecorder

log = logging.getLogger(__name__)


def start_system_metrics(cfg: RunConfig, tracker: Tracker | None, recorder: RunRecorder,
                         resumed: bool) -> object | None:
    """The run's sampler (None when off, offline or the tracker is away); on resume its steps continue."""
    if not cfg.tracking.system_metrics or tracker is None or recorder.run_id is None:
        return None
    run_id = recorder.run_id
    first_step = 0
    if resumed:
        reached, history = recorder.fetch("system metrics", lambda: tracker.metric_history(run_id, M.SYSTEM_CPU))
        if not reached:
            return None
        first_step = max((step for step, _ in history), default=-1) + 1
    return recorder.fetch("system metrics", lambda: tracker.start_system_metrics(run_id, first_step=first_step))[1]


def stop_monitor(monitor) -> None:
    """Stop the system-metrics sampler; its last delivery failing is not news of the tracking server."""
    try:
        monitor.finish()
    except Exception as err:  # MLflow's monitor raises whatever its last push met
        log.debug("system metrics monitor: %s", err)
