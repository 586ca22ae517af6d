"""What a run reports when it ends, and the last delivery to the tracker that comes before it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..status import RunStatus
from .recorder import RunRecorder


@dataclass
class RunResult:
    status: RunStatus  # FINISHED now, SKIPPED (finished earlier); sync() also reports FAILED, RUNNING
    run_id: str | None
    config_hash: str
    run_dir: Path
    summary: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    synced: bool = True  # False while the tracker has not received everything (see `aplab sync`)


def finish_sync(recorder: RunRecorder, skipped: bool = False) -> RunResult:
    """Deliver whatever the tracker has not seen yet (metrics, artifacts, final status)."""
    if recorder.ensure_run():
        recorder.push_pending() and recorder.push_artifacts() and recorder.push_end()
    recorder.save()
    return result_of(recorder, skipped)


def result_of(recorder: RunRecorder, skipped: bool = False) -> RunResult:
    state = recorder.state
    status = RunStatus.SKIPPED if skipped else state.status
    return RunResult(status, state.run_id, state.config_hash, recorder.run_dir, state.summary, state.history,
                     synced=state.end_synced)
