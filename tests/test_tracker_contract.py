"""The Tracker contract: one set of tests over every store aplab tracks into (as Optuna's storage tests run over
each storage). ``tracker`` is the in-memory twin (MemoryTracker), MLflow on a SQLite file, and, under the ``stack``
marker, MLflow through a real ``mlflow server`` on PostgreSQL (tests/stack.py). Every test holds on each: what one
backend does that another does not is a bug of one of them, and tests/test_train.py trusts the twin for it.

The protocol (aplab/tracking/base.py) has no reader of artifacts, datasets or experiment notes; ``Look`` reads
those back the way each store keeps them, and nothing else is backend-specific.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from aplab.keys import T
from aplab.status import RunStatus
from aplab.tracking import DatasetRecord, MemoryTracker, make_tracker

# The stack fixtures (one PostgreSQL and mlflow server per session), started only by the "server" backend.
pytest_plugins = ["tests.stack"]

BACKENDS = ["memory", "sqlite", pytest.param("server", marks=pytest.mark.stack)]


@pytest.fixture(scope="module")
def template_cache(tmp_path_factory) -> Path:
    """One SQLite store template for the module: each new store is then a copy, not a migration."""
    return tmp_path_factory.mktemp("aplab-cache")


@pytest.fixture(params=BACKENDS)
def tracker(request, tmp_path, template_cache, monkeypatch):
    """A Tracker on an empty store (the server's store is shared: every test names its own experiments)."""
    if request.param == "memory":
        return make_tracker("memory://")
    if request.param == "sqlite":
        monkeypatch.setenv("APLAB_CACHE", str(template_cache))
        return make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return make_tracker(request.getfixturevalue("mlflow_server").url)


@pytest.fixture
def experiment() -> str:
    """An experiment name no other test (or earlier session on the shared server) used."""
    return f"contract-{uuid.uuid4().hex[:12]}"


class Look:
    """What a store holds beyond the protocol's readers, read the store's own way."""

    def __init__(self, tracker, folder: Path):
        self.tracker, self.folder = tracker, folder

    def artifact(self, run_id: str, path: str) -> bytes:
        if isinstance(self.tracker, MemoryTracker):
            return self.tracker.runs[run_id].artifacts[path].read_bytes()
        from mlflow.artifacts import download_artifacts

        local = download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(self.folder),
                                   tracking_uri=self.tracker.uri)
        return Path(local).read_bytes()

    def datasets(self, run_id: str) -> set[tuple[str, str, str]]:
        """(name, digest, context) of each dataset input of the run."""
        if isinstance(self.tracker, MemoryTracker):
            return {(d.name, d.digest, d.context) for d in self.tracker.runs[run_id].datasets}
        inputs = self.tracker.client.get_run(run_id).inputs.dataset_inputs
        return {(i.dataset.name, i.dataset.digest, tag.value) for i in inputs for tag in i.tags
                if tag.key == T.DATASET_CONTEXT}

    def description(self, experiment: str) -> str:
        if isinstance(self.tracker, MemoryTracker):
            return self.tracker.descriptions[experiment]
        return self.tracker.client.get_experiment_by_name(experiment).tags[T.NOTE]


@pytest.fixture
def look(tracker, tmp_path) -> Look:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return Look(tracker, folder)


def only(tracker, experiment: str, tags: dict[str, str] | None = None):
    (record,) = tracker.find_runs(experiment, tags)
    return record


# --------------------------------------------------------------------------- runs


def test_a_reachable_store_passes_its_check_and_holds_no_run_of_a_new_experiment(tracker, experiment):
    tracker.check()
    assert tracker.find_runs(experiment) == []
    assert not tracker.has_run(uuid.uuid4().hex)  # an id this store never gave


def test_a_started_run_is_held_running_with_its_tags_and_nothing_logged(tracker, experiment):
    run_id = tracker.start_run(experiment, "first", {T.LOSS: "nce+rce", T.SEED: "0"})
    assert isinstance(run_id, str) and tracker.has_run(run_id)
    record = only(tracker, experiment)
    assert record.run_id == run_id and record.status == RunStatus.RUNNING == "RUNNING"
    assert {T.LOSS: "nce+rce", T.SEED: "0"}.items() <= record.tags.items()
    assert record.params == {} and record.metrics == {}


def test_runs_belong_to_their_experiment_and_each_start_is_a_new_run(tracker, experiment):
    other = experiment + "-other"
    a = tracker.start_run(experiment, "same-name", {})
    b = tracker.start_run(experiment, "same-name", {})
    c = tracker.start_run(other, None, {})
    assert len({a, b, c}) == 3
    assert {r.run_id for r in tracker.find_runs(experiment)} == {a, b}
    assert [r.run_id for r in tracker.find_runs(other)] == [c]


def test_a_child_run_names_its_parent_and_is_found_by_it(tracker, experiment):
    parent = tracker.start_run(experiment, "study", {T.STUDY_ROLE: "study"})
    children = {tracker.start_run(experiment, f"trial-{i}", {T.STUDY_ROLE: "trial"}, parent_run_id=parent)
                for i in range(2)}
    assert {r.run_id for r in tracker.find_runs(experiment, {T.PARENT_RUN_ID: parent})} == children
    assert only(tracker, experiment, {T.STUDY_ROLE: "study"}).run_id == parent
    assert T.PARENT_RUN_ID not in only(tracker, experiment, {T.STUDY_ROLE: "study"}).tags


# --------------------------------------------------------------------------- params, metrics, tags


def test_params_are_kept_as_text(tracker, experiment):
    run_id = tracker.start_run(experiment, None, {})
    tracker.log_params(run_id, {"optim.lr": 0.1, "optim.epochs": 3, "loss.name": "nce+rce", "data.clean_val": True})
    assert only(tracker, experiment).params == {"optim.lr": "0.1", "optim.epochs": "3", "loss.name": "nce+rce",
                                                "data.clean_val": "True"}


def test_many_params_all_arrive_and_logging_the_same_values_again_is_harmless(tracker, experiment):
    run_id = tracker.start_run(experiment, None, {})
    params = {f"p{i:03d}": i for i in range(250)}  # more than one MLflow batch (100 params)
    tracker.log_params(run_id, params)
    tracker.log_params(run_id, {"p007": 7})  # a resumed run logs its config again
    assert only(tracker, experiment).params == {key: str(value) for key, value in params.items()}


def test_metrics_keep_every_step_and_the_run_shows_the_latest(tracker, experiment):
    run_id = tracker.start_run(experiment, None, {})
    tracker.log_metrics(run_id, [(1, {"train/loss": 2.5, "val/acc": 0.25}), (2, {"train/loss": 1.5, "val/acc": 0.5})])
    tracker.log_metrics(run_id, [(3, {"train/loss": 1})])  # a later push; an int arrives as a float
    assert sorted(tracker.metric_history(run_id, "train/loss")) == [(1, 2.5), (2, 1.5), (3, 1.0)]
    assert sorted(tracker.metric_history(run_id, "val/acc")) == [(1, 0.25), (2, 0.5)]
    assert tracker.metric_history(run_id, "never/logged") == []
    metrics = only(tracker, experiment).metrics
    assert metrics == {"train/loss": 1.0, "val/acc": 0.5} and isinstance(metrics["train/loss"], float)


def test_many_metric_points_all_arrive(tracker, experiment):
    run_id = tracker.start_run(experiment, None, {})
    rows = [(step, {"a": step / 4, "b": -step, "c": 0.5}) for step in range(1, 401)]  # 1200 points: two batches
    tracker.log_metrics(run_id, rows)
    assert sorted(tracker.metric_history(run_id, "b")) == [(step, float(-step)) for step in range(1, 401)]
    assert len(tracker.metric_history(run_id, "a")) == len(tracker.metric_history(run_id, "c")) == 400


def test_tags_are_added_and_overwritten_and_found_together(tracker, experiment):
    run_id = tracker.start_run(experiment, None, {"cell": "c1", T.HOST: "node-a"})
    other = tracker.start_run(experiment, None, {"cell": "c1", T.HOST: "node-b"})
    tracker.set_tags(run_id, {T.HOST: "node-c", T.SLURM_JOB_ID: "77"})  # a resumed run says where it now trains
    tags = only(tracker, experiment, {T.SLURM_JOB_ID: "77"}).tags
    assert {"cell": "c1", T.HOST: "node-c", T.SLURM_JOB_ID: "77"}.items() <= tags.items()
    assert tracker.find_runs(experiment, {T.HOST: "node-a"}) == []
    assert {r.run_id for r in tracker.find_runs(experiment, {"cell": "c1"})} == {run_id, other}
    assert [r.run_id for r in tracker.find_runs(experiment, {"cell": "c1", T.HOST: "node-b"})] == [other]
    assert tracker.find_runs(experiment, {"cell": "c1", T.HOST: "node-z"}) == []


def test_a_tag_value_with_a_quote_is_found_like_any_other(tracker, experiment):
    run_id = tracker.start_run(experiment, None, {"cell": "the paper's grid"})
    assert [r.run_id for r in tracker.find_runs(experiment, {"cell": "the paper's grid"})] == [run_id]


def test_the_run_shows_the_value_of_its_highest_step_whatever_the_order_logged(tracker, experiment):
    run_id = tracker.start_run(experiment, None, {})
    tracker.log_metrics(run_id, [(5, {"val/acc": 0.75})])
    tracker.log_metrics(run_id, [(2, {"val/acc": 0.25})])  # an earlier epoch pushed late (after an outage)
    assert only(tracker, experiment).metrics == {"val/acc": 0.75}


# --------------------------------------------------------------------------- status


@pytest.mark.parametrize("status", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED])
def test_an_ended_run_keeps_its_status_and_a_resumed_one_runs_again(tracker, experiment, status):
    run_id = tracker.start_run(experiment, None, {})
    tracker.end_run(run_id, status)
    assert only(tracker, experiment).status == status
    tracker.resume_run(run_id)
    assert only(tracker, experiment).status == "RUNNING"
    tracker.log_metrics(run_id, [(1, {"x": 1.0})])  # a resumed run takes metrics again
    tracker.end_run(run_id, RunStatus.FINISHED)
    record = only(tracker, experiment)
    assert (record.run_id, record.status, record.metrics) == (run_id, "FINISHED", {"x": 1.0})


def test_ending_one_run_leaves_the_others_running(tracker, experiment):
    first = tracker.start_run(experiment, None, {"n": "1"})
    second = tracker.start_run(experiment, None, {"n": "2"})
    tracker.end_run(first, RunStatus.FINISHED)
    assert {r.run_id: r.status for r in tracker.find_runs(experiment)} == {first: "FINISHED", second: "RUNNING"}


# --------------------------------------------------------------------------- artifacts, datasets, notes


def test_artifacts_are_read_back_as_logged_at_their_paths(tracker, experiment, look, tmp_path):
    run_id = tracker.start_run(experiment, None, {})
    table = tmp_path / "metrics.csv"
    table.write_text("epoch,train/loss\n1,2.5\n2,1.5\n")
    weights = tmp_path / "state_dict.pt"
    weights.write_bytes(bytes(range(256)) * 8)
    tracker.log_artifact(run_id, table)
    tracker.log_artifact(run_id, weights, artifact_path="model")
    assert look.artifact(run_id, "metrics.csv") == b"epoch,train/loss\n1,2.5\n2,1.5\n"
    assert look.artifact(run_id, "model/state_dict.pt") == bytes(range(256)) * 8


def test_dataset_inputs_are_kept_with_their_context(tracker, experiment, look):
    run_id = tracker.start_run(experiment, None, {})
    tracker.log_dataset(run_id, DatasetRecord("digits-noisy", "d1", "digits", 1437))  # context: training
    tracker.log_dataset(run_id, DatasetRecord("digits-test", "d2", "digits", 360, "test"))
    assert look.datasets(run_id) == {("digits-noisy", "d1", "training"), ("digits-test", "d2", "test")}


def test_an_experiment_described_before_its_first_run_keeps_the_text_and_takes_runs(tracker, experiment, look):
    tracker.describe_experiment(experiment, "alpha x beta grid of nce+rce")
    assert look.description(experiment) == "alpha x beta grid of nce+rce"
    run_id = tracker.start_run(experiment, None, {})
    assert [r.run_id for r in tracker.find_runs(experiment)] == [run_id]
    tracker.describe_experiment(experiment, "the grid, run again")
    assert look.description(experiment) == "the grid, run again"
