"""``aplab ui``: MLflow's UI on a local store, opened on an experiment's runs, its server's logs in a file.

The server is a child in its own process group: SIGTERM or Ctrl-C to ``aplab ui`` stops it and its workers,
so its port is free again when ``aplab ui`` returns.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from .mlflow_tracker import MlflowTracker, is_remote
from .sqlite_store import sqlite_path

#: The experiments list of model-training experiments (MLflow 3 otherwise opens on its GenAI overview).
UI_PAGE = "/#/experiments?workflowType=machine_learning"
#: Seconds the server has to stop on SIGTERM before it is killed.
STOP_SECONDS = 10.0
#: Seconds the server has to answer /health before ``aplab ui`` gives up (MLflow takes a few on a busy machine).
START_SECONDS = 120.0


def runs_page(base: str, experiment_id: str | None) -> str:
    """The address of an experiment's runs (the model-training runs table), or of the experiments list."""
    if experiment_id is None:
        return base.rstrip("/") + UI_PAGE
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"


def experiment_to_open(tracker: MlflowTracker, name: str | None) -> str | None:
    """The id of experiment ``name`` (a ConfigError when the store has none of that name), else of the one with
    the latest activity other than report experiments and MLflow's empty Default; None when there is none."""
    client = tracker.client
    if name is not None:
        found = client.get_experiment_by_name(name)
        if found is None:
            names = [e.name for e in client.search_experiments()]
            raise ConfigError("--experiment", name, "an experiment of this store: " + (", ".join(names) or "none yet"))
        return found.experiment_id
    for experiment in client.search_experiments(order_by=["last_update_time DESC"]):
        if experiment.name.endswith("-reports"):
            continue
        if client.search_runs([experiment.experiment_id], max_results=1):
            return experiment.experiment_id
    return None


def default_log(uri: str) -> Path:
    """Where the server's own output goes: beside the SQLite store, else in the working directory."""
    db = sqlite_path(uri)
    return (db.parent if db is not None else Path.cwd()) / "mlflow-ui.log"


def open_ui(uri: str, port: int, experiment: str | None = None, log: Path | None = None) -> int:
    """Run the MLflow UI on the same store until SIGTERM or Ctrl-C (then stop the server, return 0); a tracking
    server already has its own UI: print where its runs are."""
    if not 1 <= port <= 65535:
        raise ConfigError("port", port, "an integer from 1 to 65535")
    tracker = MlflowTracker(uri)
    tracker.check()
    if is_remote(uri):
        page = runs_page(uri, experiment_to_open(tracker, experiment) if experiment else None)
        print(f"the tracking server serves its own UI: open {page}")
        return 0
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: closed connections
        try:                                                           # of a previous server do not count
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError("port", port, "a free port (this one is in use): pass another --port") from None
    page = runs_page(f"http://127.0.0.1:{port}", experiment_to_open(tracker, experiment))
    log = Path(log) if log is not None else default_log(uri)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port", str(port)]
    with open(log, "ab") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)

    def announce() -> None:  # only once the server answers: an address printed earlier is refused when opened
        print(f"MLflow UI of {uri}: open {page}", flush=True)
        print(f"server log: {log}  (Ctrl-C or SIGTERM stops the server)", flush=True)

    return _serve(server, f"http://127.0.0.1:{port}/health", announce, log)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _serve(server: subprocess.Popen, health: str, announce: Callable[[], None], log: Path) -> int:
    """Wait for the server to answer ``health`` (then ``announce``) and to end; on SIGTERM or SIGINT stop its
    whole process group, then return 0. A server that never answers is stopped: 1 and one line."""
    stopping: list[int] = []

    def stop(signum, frame) -> None:
        stopping.append(signum)
        _signal_group(server, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    waited, started = 0.0, time.monotonic()
    ready = False
    try:
        while True:
            if not ready and not stopping:
                ready = _answers(health)
                if ready:
                    announce()
                elif time.monotonic() - started > START_SECONDS:
                    print(f"aplab: error: the MLflow UI did not answer within {START_SECONDS:.0f} s; see {log}",
                          file=sys.stderr, flush=True)
                    _signal_group(server, signal.SIGTERM)
                    stopping.append(0)
            try:
                code = server.wait(timeout=1.0 if ready or stopping else 0.25)
                break
            except subprocess.TimeoutExpired:  # still serving; asked to stop long enough ago: kill it
                waited = waited + 1.0 if stopping else 0.0
                if waited >= STOP_SECONDS:
                    _signal_group(server, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _signal_group(server, signal.SIGKILL)  # workers left behind by the server, if any
    if 0 in stopping:  # it never answered
        return 1
    if not ready and not stopping:
        print(f"aplab: error: the MLflow UI stopped before it answered (exit {code}); see {log}", file=sys.stderr)
        return code or 1
    return 0 if stopping else code


def _signal_group(server: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(server.pid, sig)
    except ProcessLookupError:  # already gone
        pass
