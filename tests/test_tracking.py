"""The Tracker protocol on both implementations: MLflow on a real SQLite store, and the in-memory twin."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from aplab.errors import ConfigError, TrackingUnavailable
from aplab.keys import T
from aplab.tracking import MemoryTracker
from tests.helpers import aplab_command

ROOT = Path(__file__).resolve().parents[1]
KIND = "mlflow.experimentKind"


@pytest.fixture(scope="module")
def template_cache(tmp_path_factory) -> Path:
    """One store template for the module: each new store is then a copy, not a migration."""
    return tmp_path_factory.mktemp("aplab-cache")


@pytest.fixture
def tracker(tmp_path, template_cache, monkeypatch):
    from aplab.tracking.mlflow_tracker import MlflowTracker

    monkeypatch.setenv("APLAB_CACHE", str(template_cache))
    monkeypatch.chdir(tmp_path)
    return MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


# --- MLflow ---------------------------------------------------------------------------------------

def test_runs_carry_their_source_user_and_commit(tracker):
    import getpass

    run_id = tracker.start_run("e", "r", {T.LOSS: "nce+rce"})
    tags = tracker.client.get_run(run_id).data.tags
    assert tags[T.LOSS] == "nce+rce"
    assert tags["mlflow.user"] == getpass.getuser()
    assert tags["mlflow.source.name"] == sys.argv[0]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert tags["mlflow.source.git.commit"] == head.stdout.strip()


def test_experiments_open_on_their_runs_in_the_ui(tracker):
    """MLflow 3.17's UI opens an experiment without this tag on its GenAI overview."""
    tracker.start_run("new", None, {})
    assert tracker.client.get_experiment_by_name("new").tags[KIND] == "custom_model_development"
    old = tracker.client.create_experiment("old")  # as aplab made them before
    assert KIND not in tracker.client.get_experiment(old).tags
    tracker.start_run("old", None, {})
    assert tracker.client.get_experiment(old).tags[KIND] == "custom_model_development"


def test_describe_experiment_sets_the_note_the_ui_shows(tracker):
    tracker.describe_experiment("grid", "alpha x beta grid of nce+rce")
    assert tracker.client.get_experiment_by_name("grid").tags[T.NOTE] == "alpha x beta grid of nce+rce"


def test_has_run_tells_a_held_run_from_a_lost_one(tracker, tmp_path, template_cache):
    from aplab.tracking.mlflow_tracker import MlflowTracker

    run_id = tracker.start_run("e", None, {})
    assert tracker.has_run(run_id)
    assert not tracker.has_run(uuid.uuid4().hex)
    fresh = MlflowTracker(f"sqlite:///{tmp_path / 'recreated.db'}")  # what a deleted-and-recreated store holds
    assert not fresh.has_run(run_id)


def test_has_run_raises_on_an_outage(monkeypatch):
    from aplab.tracking.mlflow_tracker import MlflowTracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(Exception):  # noqa: B017 - any failure, but never a quiet False
        MlflowTracker("http://127.0.0.1:9").has_run(uuid.uuid4().hex)


def test_log_model_makes_a_ready_logged_model_of_the_run(tracker):
    import mlflow.pytorch

    run_id = tracker.start_run("e", "nce+rce s0 sym0.6 digits", {})
    tracker.log_params(run_id, {"optim.lr": 0.1})
    model = small_model()
    tracker.log_model(run_id, model)
    run = tracker.client.get_run(run_id)
    (output,) = run.outputs.model_outputs
    logged = tracker.client.get_logged_model(output.model_id)
    assert logged.source_run_id == run_id
    assert logged.name == "nce+rce s0 sym0_6 digits"  # the run's name, without the "." MLflow refuses
    assert str(logged.status) in ("READY", "LoggedModelStatus.READY")
    assert logged.params == {"optim.lr": "0.1"}
    loaded = mlflow.pytorch.load_model(logged.artifact_location)
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), model(x))


def test_the_logged_model_carries_the_runs_final_metrics_on_their_datasets(tracker):
    from aplab.tracking import DatasetRecord

    run_id = tracker.start_run("e", None, {})
    for context in ("training", "validation", "test"):
        tracker.log_dataset(run_id, DatasetRecord(f"digits-{context}", f"d-{context}", "digits", 10, context))
    tracker.log_metrics(run_id, [(1, {"test/acc": 0.5, "val/acc": 0.4, "lr": 0.1}),
                                 (2, {"test/acc": 0.75, "val/acc": 0.6, "lr": 0.01})])
    tracker.log_model(run_id, small_model())
    (output,) = tracker.client.get_run(run_id).outputs.model_outputs
    linked = {m.key: m for m in tracker.client.get_logged_model(output.model_id).metrics}
    assert {k: (m.value, m.step) for k, m in linked.items()} == {"test/acc": (0.75, 2), "val/acc": (0.6, 2),
                                                                 "lr": (0.01, 2)}
    assert (linked["test/acc"].dataset_name, linked["test/acc"].dataset_digest) == ("digits-test", "d-test")
    assert linked["val/acc"].dataset_name == "digits-validation"
    assert linked["lr"].dataset_name is None
    assert tracker.metric_history(run_id, "test/acc") == [(1, 0.5), (2, 0.75)]  # the run keeps one point each


def test_resumed_system_metrics_continue_their_steps(tracker):
    run_id = tracker.start_run("e", None, {})
    tracker.log_metrics(run_id, [(4, {"system/cpu_utilization_percentage": 10.0})])  # the first attempt's last
    resumed = tracker.start_system_metrics(run_id, first_step=1)
    resumed.publish_metrics({"cpu_utilization_percentage": 20.0})
    resumed.finish()
    fresh_run = tracker.start_run("e", None, {})
    fresh = tracker.start_system_metrics(fresh_run)
    fresh.publish_metrics({"cpu_utilization_percentage": 30.0})
    fresh.finish()
    assert tracker.metric_history(run_id, "system/cpu_utilization_percentage") == [(4, 10.0), (5, 20.0)]
    assert tracker.metric_history(fresh_run, "system/cpu_utilization_percentage") == [(0, 30.0)]


def test_a_store_made_from_the_template_is_its_own(tracker, tmp_path, template_cache):
    tracker.check()
    assert list(template_cache.glob("mlflow-store-*.db")), "the template was cached"
    default = tracker.client.get_experiment("0")
    assert default.artifact_location == str(tmp_path / "mlruns" / "0")  # where MLflow itself puts it
    run_id = tracker.start_run("e", None, {})
    tracker.log_metrics(run_id, [(1, {"a": 1.0})])
    assert tracker.metric_history(run_id, "a") == [(1, 1.0)]
    umask = os.umask(0o022)  # what a file made here gets: the test's process, not the library, sets it
    os.umask(umask)
    assert (tmp_path / "mlflow.db").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "mlflow.db.lock"]  # no leftovers


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_store_errors_raised_to_aplab_are_not_also_logged_with_tracebacks(tracker):
    tracker.check()  # a tracker installs the filter
    logger, collect = logging.getLogger("mlflow.store.db.utils"), Collect()
    level = logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.DEBUG)
    try:
        logger.error("SQLAlchemy database error. The following exception is caught.\nboom")
        logger.info("Creating initial MLflow database tables...")
        logger.warning("a warning aplab does not raise")
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    assert collect.messages == ["a warning aplab does not raise"]


def test_importing_the_tracker_changes_no_environment_or_logger():
    code = ("import os, logging, mlflow\n"
            "env, level = dict(os.environ), logging.getLogger('mlflow').level\n"
            "import aplab.tracking.mlflow_tracker as m\n"
            "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())\n"
            "assert logging.getLogger('mlflow').level == level\n"
            "assert not hasattr(m, 'MLFLOW_VERSION')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


# --- aplab ui ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", [-5, 0, 65536])
def test_ui_refuses_a_port_that_is_not_one(port, tmp_path):
    from aplab.tracking.ui import open_ui

    with pytest.raises(ConfigError, match="port="):
        open_ui(f"sqlite:///{tmp_path / 'mlflow.db'}", port)


def test_ui_refuses_a_port_in_use(tracker):
    from aplab.tracking.ui import open_ui

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match="in use"):
            open_ui(tracker.uri, busy.getsockname()[1])


@pytest.mark.parametrize("uri", ["foo://bar", "http://127.0.0.1:9"])
def test_ui_refuses_a_store_it_cannot_open(uri):
    from aplab.tracking.ui import open_ui

    with pytest.raises(TrackingUnavailable):
        open_ui(uri, 5000)


def test_ui_errors_are_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "platform")}
    for args in (["--port", "-5"], ["--tracking-uri", "foo://bar"]):
        out = subprocess.run(aplab_command("ui", *args), capture_output=True, text=True, cwd=tmp_path, env=env,
                             timeout=300)
        assert out.returncode == 2, out.stderr[-2000:]
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("aplab: error:"), out.stderr


# --- memory twin -------------------------------------------------------------------------------------

def test_memory_tracker_keeps_runs_descriptions_and_a_copy_of_the_model():
    tracker = MemoryTracker()
    run_id = tracker.start_run("e", None, {})
    assert tracker.has_run(run_id) and not tracker.has_run("elsewhere")
    tracker.describe_experiment("e", "text")
    assert tracker.descriptions == {"e": "text"}
    model = small_model()
    tracker.log_model(run_id, model)
    kept = tracker.runs[run_id].models["model"]
    with torch.no_grad():
        model[0].weight.add_(1.0)  # training on after logging does not change what was logged
    assert not torch.equal(kept["0.weight"], model[0].weight)
    assert tracker.start_system_metrics(run_id, first_step=3) is None
    tracker.fail = True
    with pytest.raises(ConnectionError):
        tracker.has_run(run_id)


def test_ui_of_a_server_points_at_its_runs_page(capsys):
    """A server has its own UI: aplab prints where its runs are (the UI otherwise opens on GenAI pages)."""
    import http.server
    import threading

    from aplab.tracking.ui import open_ui

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            assert open_ui(url, 5000) == 0
        finally:
            server.shutdown()
    assert capsys.readouterr().out.strip().endswith(f"{url}/#/experiments?workflowType=machine_learning")


def test_short_http_retries_keep_what_the_user_set(monkeypatch):
    from aplab.tracking import HTTP_RETRY_DEFAULTS, use_short_http_retries

    for name in HTTP_RETRY_DEFAULTS:
        monkeypatch.delenv(name, raising=False)  # restored after the test
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    use_short_http_retries()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"


def test_logging_a_model_leaves_no_root_log_handler_behind(tmp_path):
    """MLflow's pytorch flavour calls logging.basicConfig when imported: aplab's lines would print twice."""
    import subprocess
    import sys

    script = ("import logging; from aplab.tracking.mlflow_tracker import import_mlflow_pytorch; "
              "import_mlflow_pytorch(); print(len(logging.getLogger().handlers), logging.getLogger().level)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["0", str(30)]  # no handler, WARNING: as Python starts
