"""The tracking interface the platform talks to, and an in-memory twin for tests and offline runs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..keys import T
from ..status import RunStatus

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset input of a run: the noisy training labels, identified by their digest."""

    name: str
    digest: str
    source: str
    num_rows: int
    context: str = "training"


@dataclass(frozen=True)
class RunRecord:
    """What a report or a pipeline needs to know of a tracked run."""

    run_id: str
    status: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


class Tracker(Protocol):
    """Everything aplab asks of a tracking store (MLflow in production, memory in tests)."""

    uri: str

    def check(self) -> None: ...
    def start_run(self, experiment: str, name: str | None, tags: dict[str, str], parent_run_id: str | None = None) -> str: ...
    def resume_run(self, run_id: str) -> None: ...
    def log_params(self, run_id: str, params: dict[str, object]) -> None: ...
    def log_metrics(self, run_id: str, rows: list[tuple[int, dict[str, float]]]) -> None: ...
    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...
    def log_dataset(self, run_id: str, dataset: DatasetRecord) -> None: ...
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...
    def end_run(self, run_id: str, status: str) -> None: ...
    def find_runs(self, experiment: str, tags: dict[str, str] | None = None) -> list[RunRecord]: ...
    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]: ...
    def start_system_metrics(self, run_id: str, first_step: int = 0) -> object | None: ...
    def has_run(self, run_id: str) -> bool: ...
    def describe_experiment(self, experiment: str, text: str) -> None: ...
    def log_model(self, run_id: str, model: torch.nn.Module, name: str = "model") -> None: ...


@dataclass
class MemoryRun:
    experiment: str
    name: str | None
    tags: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    datasets: list[DatasetRecord] = field(default_factory=list)
    status: str = RunStatus.RUNNING
    models: dict[str, dict[str, object]] = field(default_factory=dict)  # name -> the model's state_dict


#: The in-memory store's URI: it lives in the one process that made it (``require_shared_store``).
MEMORY_URI = "memory://"


class MemoryTracker:
    """A Tracker that keeps everything in memory; set ``fail`` to simulate an unreachable server."""

    uri = MEMORY_URI

    def __init__(self) -> None:
        self.runs: dict[str, MemoryRun] = {}
        self.descriptions: dict[str, str] = {}  # experiment -> its description
        self.fail = False
        self._ids = itertools.count()

    def _guard(self) -> None:
        if self.fail:
            raise ConnectionError("memory tracker is down")

    def check(self) -> None:
        self._guard()

    def start_run(self, experiment, name, tags, parent_run_id=None):
        self._guard()
        run_id = f"run{next(self._ids)}"
        self.runs[run_id] = MemoryRun(experiment, name, dict(tags))
        if parent_run_id:
            self.runs[run_id].tags[T.PARENT_RUN_ID] = parent_run_id
        return run_id

    def resume_run(self, run_id):
        self._guard()
        self.runs[run_id].status = RunStatus.RUNNING

    def log_params(self, run_id, params):
        self._guard()
        self.runs[run_id].params.update({k: str(v) for k, v in params.items()})

    def log_metrics(self, run_id, rows):
        self._guard()
        for step, values in rows:
            for key, value in values.items():
                self.runs[run_id].metrics.setdefault(key, []).append((step, float(value)))

    def log_artifact(self, run_id, path, artifact_path=None):
        self._guard()
        key = f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name
        self.runs[run_id].artifacts[key] = Path(path)

    def log_dataset(self, run_id, dataset):
        self._guard()
        if dataset not in self.runs[run_id].datasets:  # as MLflow: the same input twice is one input
            self.runs[run_id].datasets.append(dataset)

    def set_tags(self, run_id, tags):
        self._guard()
        self.runs[run_id].tags.update(tags)

    def end_run(self, run_id, status):
        self._guard()
        self.runs[run_id].status = status

    def find_runs(self, experiment, tags=None):
        self._guard()
        found = []
        for run_id, run in self.runs.items():
            if run.experiment == experiment and all(run.tags.get(k) == v for k, v in (tags or {}).items()):
                # as MLflow: a metric's value at its highest step (of those, the one logged last)
                last = {k: max(enumerate(v), key=lambda iv: (iv[1][0], iv[0]))[1][1] for k, v in run.metrics.items()}
                found.append(RunRecord(run_id, run.status, dict(run.tags), dict(run.params), last))
        return found

    def metric_history(self, run_id, key):
        self._guard()
        return list(self.runs[run_id].metrics.get(key, []))

    def start_system_metrics(self, run_id, first_step=0):
        return None

    def has_run(self, run_id):
        self._guard()
        return run_id in self.runs

    def describe_experiment(self, experiment, text):
        self._guard()
        self.descriptions[experiment] = text

    def log_model(self, run_id, model, name="model"):
        """Keeps a detached copy of the weights, as MLflow keeps the logged files."""
        self._guard()
        self.runs[run_id].models[name] = {k: v.detach().clone() for k, v in model.state_dict().items()}
