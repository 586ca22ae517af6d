"""``aplab sync``: push a run folder's state to a tracker (a run made offline, during an outage, or lost
with its store, which is created again there)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..status import RunStatus
from ..tracking import Tracker, same_store
from .recorder import RunRecorder
from .result import RunResult, result_of


class RunOfAnotherStore(ConfigError):
    """The run folder's run lives in another tracking store than the one asked for."""


def sync(run_dir: Path, tracker: Tracker) -> RunResult:
    """Push a run made offline (or during an outage, or lost with its store) to a tracker: run, metrics,
    artifacts, model, status. A run the store no longer holds is created again there."""
    recorder = RunRecorder.load(run_dir, tracker)
    if recorder is None:
        raise ConfigError("run folder", str(run_dir), "a folder with a state.json written by aplab train")
    home = recorder.state.tracking_uri
    if recorder.run_id is not None and not same_store(home, tracker.uri):
        raise RunOfAnotherStore("--tracking-uri", tracker.uri, f"{home}, the store that holds run {recorder.run_id}")
    tracker.check()
    recorder.state.tracking_uri = tracker.uri
    recorder.forget_lost_run()
    if recorder.ensure_run():
        done = recorder.push_pending()
        if recorder.state.status in (RunStatus.FINISHED, RunStatus.FAILED) and done:
            recorder.push_artifacts() and recorder.push_end()
    recorder.save()
    return result_of(recorder)
