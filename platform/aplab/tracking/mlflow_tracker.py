"""A Tracker over MlflowClient with explicit run ids (mlflow is imported here and in ``mlflow_adapter`` only).

Explicit run ids (never the fluent "active run", never the global tracking URI) make it safe from
any thread or process, and leave the importer's MLflow settings alone.
"""

from __future__ import annotations

import functools
import getpass
import logging
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunTag,
    SourceType,
)
from mlflow.exceptions import MlflowException

from ..errors import TrackingUnavailable
from ..keys import T
from ..status import RunStatus
from ..version import git_commit
from .base import DatasetRecord, RunRecord
from .mlflow_adapter import adopt_default_experiment, is_duplicate_row, is_missing, system_metrics_monitor
from .quiet import quiet_store_errors
from .sqlite_store import prepare_store, sqlite_path

BATCH = 100  # MLflow's limit on params per log_batch call
#: The experiment's kind, read by MLflow 3's UI: a model-training experiment offers "Training runs"
#: even on the UI's GenAI pages (which pages open first is the browser's choice, see UI_PAGE).
MODEL_TRAINING_KIND = "custom_model_development"
#: Metric prefix -> the context of the dataset it is measured on (DatasetRecord.context).
METRIC_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


class MlflowTracker:
    """Tracker backed by an MLflow tracking store (SQLite file, PostgreSQL, or an HTTP server)."""

    def __init__(self, uri: str):
        self.uri = uri
        self._client: MlflowClient | None = None
        self._experiments: dict[str, str] = {}
        quiet_store_errors()

    @property
    def client(self) -> MlflowClient:
        """Created on first use: a SQLite store file appears only when something is logged."""
        if self._client is None:
            db = sqlite_path(self.uri)
            if db is not None:
                prepare_store(db, mlflow.__version__, open_store, adopt_default_experiment)
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
        """The experiment's id, creating it as a model-training experiment (older ones are marked so too)."""
        if name not in self._experiments:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                location = None
                if (db := sqlite_path(self.uri)) is not None:
                    location = (db.parent / "mlartifacts").resolve().as_uri()
                try:
                    self._experiments[name] = self.client.create_experiment(
                        name, artifact_location=location, tags={T.EXPERIMENT_KIND: MODEL_TRAINING_KIND})
                except MlflowException:  # created meanwhile by another worker
                    self._experiments[name] = self.client.get_experiment_by_name(name).experiment_id
            else:
                if T.EXPERIMENT_KIND not in found.tags:
                    self.client.set_experiment_tag(found.experiment_id, T.EXPERIMENT_KIND, MODEL_TRAINING_KIND)
                self._experiments[name] = found.experiment_id
        return self._experiments[name]

    def start_run(self, experiment, name, tags, parent_run_id=None):
        tags = {**source_tags(), **tags}
        if parent_run_id:
            tags[T.PARENT_RUN_ID] = parent_run_id
        run = self.client.create_run(self.experiment_id(experiment), tags=tags, run_name=name)
        return run.info.run_id

    def resume_run(self, run_id):
        self.client.update_run(run_id, status=RunStatus.RUNNING)

    def has_run(self, run_id):
        """False when the store does not hold the run (e.g. a new store); an outage raises."""
        try:
            self.client.get_run(run_id)
        except MlflowException as err:
            if is_missing(err):
                return False
            raise
        return True

    def describe_experiment(self, experiment, text):
        self.client.set_experiment_tag(self.experiment_id(experiment), T.NOTE, text)

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
        """The dataset as an input of the run; sent again once when another process created the same dataset
        in the experiment at the same moment (the second try finds its row)."""
        entity = Dataset(name=dataset.name, digest=dataset.digest, source_type="aplab", source=dataset.source,
                         profile=f'{{"num_rows": {dataset.num_rows}}}')
        inputs = [DatasetInput(entity, [InputTag(T.DATASET_CONTEXT, dataset.context)])]
        try:
            self.client.log_inputs(run_id, inputs)
        except MlflowException as err:
            if not is_duplicate_row(err):
                raise
            self.client.log_inputs(run_id, inputs)

    def log_model(self, run_id, model, name="model"):
        """The model as an MLflow LoggedModel of the run, named after the run (``logged_model_name``): its
        params, and the last value of each of its metrics (log it after the final metrics), shown under the
        run's outputs.

        ``mlflow.pytorch.log_model`` would need the global tracking URI, so the same steps go through
        this client: create the LoggedModel, save the flavour with explicit requirements (MLflow's
        requirement inference costs seconds), upload, mark it READY, and link it to the run. Pickled:
        loading it needs aplab importable (the models are aplab's classes).
        """
        pytorch_flavour = import_mlflow_pytorch()
        run = self.client.get_run(run_id)
        logged = self.client.create_logged_model(run.info.experiment_id, name=logged_model_name(run.info.run_name, name),
                                                 source_run_id=run_id,
                                                 params=dict(run.data.params), model_type="pytorch")
        try:
            with tempfile.TemporaryDirectory() as folder:
                local = Path(folder) / name
                pytorch_flavour.save_model(model, str(local), pip_requirements=[f"torch=={version('torch')}"],
                                          serialization_format="pickle")  # "pt2" needs an input example
                self.client.log_model_artifacts(logged.model_id, str(local))
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        self._link_final_metrics(run, logged.model_id)

    def _link_final_metrics(self, run, model_id: str) -> None:
        """The run's last value of every metric, shown on the model (and tied to its dataset by prefix).

        MLflow links a metric to a model by logging it again with ``model_id`` (as ``Model.log`` does);
        the run keeps one point, since an identical point is not stored twice.
        """
        datasets = {tag.value: entry.dataset for entry in run.inputs.dataset_inputs for tag in entry.tags
                    if tag.key == T.DATASET_CONTEXT}
        linked = []
        for key in run.data.metrics:
            last = max(self.client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
            dataset = datasets.get(METRIC_CONTEXTS.get(key.split("/", 1)[0], ""))
            linked.append(Metric(key, last.value, last.timestamp, last.step, model_id=model_id,
                                 dataset_name=dataset.name if dataset else None,
                                 dataset_digest=dataset.digest if dataset else None, run_id=run.info.run_id))
        for start in range(0, len(linked), 1000):
            self.client.log_batch(run.info.run_id, metrics=linked[start:start + 1000])

    def set_tags(self, run_id, tags):
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end_run(self, run_id, status):
        self.client.set_terminated(run_id, status)

    def find_runs(self, experiment, tags=None):
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        tags = tags or {}
        # A value with a quote cannot be written into MLflow's filter string: such tags are matched here.
        clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items() if "'" not in v and "`" not in k]
        runs = self.client.search_runs([found.experiment_id], " and ".join(clauses), max_results=50000)
        return [RunRecord(r.info.run_id, r.info.status, dict(r.data.tags), dict(r.data.params), dict(r.data.metrics))
                for r in runs if all(r.data.tags.get(k) == v for k, v in tags.items())]

    def metric_history(self, run_id, key):
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    def start_system_metrics(self, run_id, first_step=0):
        """Sample CPU/GPU/memory every 10 s into the run (needs psutil); None when unavailable.

        ``first_step > 0`` (a resumed run) continues after the last system-metric step the store
        holds (MLflow's ``resume_logging``) instead of writing over steps from 0 again.
        """
        return system_metrics_monitor(run_id, self.uri, resume=first_step > 0)


def open_store(uri: str) -> None:
    """Open (and, for a new file, migrate) an MLflow store; MLflow keeps it for the process."""
    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


@functools.cache
def source_tags() -> dict[str, str]:
    """What MLflow's fluent API records of a run's origin: entry point, user, and the code's git commit."""
    tags = {T.SOURCE_NAME: sys.argv[0] or "<console>", T.SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL),
            T.USER: _user()}
    if commit := git_commit():
        tags[T.GIT_COMMIT] = commit
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (some containers)
        return "unknown"


#: Where the UI shows runs: MLflow 3.17's UI opens every experiment on its GenAI overview unless the
#: browser chose "Model training" once (localStorage) or the address says so; this address does.
#: Characters MLflow refuses in a LoggedModel's name (mlflow.utils.validation), replaced by "_".
MODEL_NAME_FORBIDDEN = "/:.%\"'"


def logged_model_name(run_name: str | None, name: str = "model") -> str:
    """The LoggedModel's name: the run's (``nce+rce s0 sym0_6 digits``), so the models page tells runs apart;
    ``name`` when the run has none."""
    text = run_name or name
    for char in MODEL_NAME_FORBIDDEN:
        text = text.replace(char, "_")
    return text


def import_mlflow_pytorch():
    """``mlflow.pytorch``, without the root log handler its import installs (MLflow 3's Lightning autologging
    module calls ``logging.basicConfig`` at import): left there, every aplab line would print twice, the
    second time as ``INFO:aplab....``. The root logger's handlers and level are put back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import mlflow.pytorch

    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    return mlflow.pytorch
