"""The only module that imports mlflow: a Tracker over MlflowClient with explicit run ids.

Explicit run ids (never the fluent "active run") make it safe from any thread or process.
HTTP retries are kept short so an outage costs seconds, not minutes, per call.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

for _name, _value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"), ("MLFLOW_HTTP_REQUEST_TIMEOUT", "8"),
                      ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")):
    os.environ.setdefault(_name, _value)

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag  # noqa: E402

from ..errors import TrackingUnavailable  # noqa: E402
from .base import DatasetRecord, RunRecord  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep the per-epoch line the only chatter

BATCH = 100  # MLflow's limit on params per log_batch call
MLFLOW_VERSION = mlflow.__version__


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


class MlflowTracker:
    """Tracker backed by an MLflow tracking store (SQLite file, PostgreSQL, or an HTTP server)."""

    def __init__(self, uri: str):
        self.uri = uri
        self._client: MlflowClient | None = None
        self._experiments: dict[str, str] = {}

    @property
    def client(self) -> MlflowClient:
        """Created on first use: a SQLite store file appears only when something is logged."""
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def check(self, timeout: float = 5.0) -> None:
        """Fail fast (under ``timeout`` seconds) when the store cannot be reached or its URI is not one."""
        if not is_remote(self.uri):
            try:
                self.client.search_experiments(max_results=1)
            except Exception as err:  # an unknown scheme, a deprecated file store, a database that refuses
                raise TrackingUnavailable(f"tracking store {self.uri} cannot be used ({type(err).__name__}: "
                                          f"{' '.join(str(err).split())[:300]})") from None
            return
        try:
            with urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=timeout) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise TrackingUnavailable(f"tracking server {self.uri} is unreachable ({err}); start it, "
                                      "pass another --tracking-uri, or use --offline") from None
        raise TrackingUnavailable(f"tracking server {self.uri} answered /health with an error")

    def experiment_id(self, name: str) -> str:
        if name not in self._experiments:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                location = None
                if self.uri.startswith("sqlite:///"):
                    location = (Path(self.uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
                try:
                    self._experiments[name] = self.client.create_experiment(name, artifact_location=location)
                except mlflow.exceptions.MlflowException:  # created meanwhile by another worker
                    self._experiments[name] = self.client.get_experiment_by_name(name).experiment_id
            else:
                self._experiments[name] = found.experiment_id
        return self._experiments[name]

    def start_run(self, experiment, name, tags, parent_run_id=None):
        tags = dict(tags)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id(experiment), tags=tags, run_name=name)
        return run.info.run_id

    def resume_run(self, run_id):
        self.client.update_run(run_id, status="RUNNING")

    def log_params(self, run_id, params):
        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(run_id, params=items[start:start + BATCH])

    def log_metrics(self, run_id, rows):
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for step, values in rows for key, value in values.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000])

    def log_artifact(self, run_id, path, artifact_path=None):
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_dataset(self, run_id, dataset: DatasetRecord):
        entity = Dataset(name=dataset.name, digest=dataset.digest, source_type="aplab", source=dataset.source,
                         profile=f'{{"num_rows": {dataset.num_rows}}}')
        self.client.log_inputs(run_id, [DatasetInput(entity, [InputTag("mlflow.data.context", dataset.context)])])

    def set_tags(self, run_id, tags):
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end_run(self, run_id, status):
        self.client.set_terminated(run_id, status)

    def find_runs(self, experiment, tags=None):
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        clauses = [f"tags.`{k}` = '{v}'" for k, v in (tags or {}).items()]
        runs = self.client.search_runs([found.experiment_id], " and ".join(clauses), max_results=50000)
        return [RunRecord(r.info.run_id, r.info.status, dict(r.data.tags), dict(r.data.params), dict(r.data.metrics))
                for r in runs]

    def metric_history(self, run_id, key):
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    def start_system_metrics(self, run_id):
        """Sample CPU/GPU/memory every 10 s into the run (needs psutil); None when unavailable."""
        try:
            import psutil  # noqa: F401
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
        except ImportError:
            return None
        monitor = SystemMetricsMonitor(run_id, tracking_uri=self.uri)
        monitor.start()
        return monitor


def open_ui(uri: str, port: int) -> int:
    """Run the MLflow UI on the same store (blocks until stopped)."""
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port", str(port)]
    return subprocess.call(command)
