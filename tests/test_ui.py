"""The MLflow UI and names that compare at a glance (issue 24, item 5): runs named loss and seed first, models named
after their run, ``aplab ui`` opening an experiment's runs with its server's logs in a file, stopped by SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.request

import pytest

from aplab.config import from_flat
from tests.helpers import aplab_command, aplab_env, free_port


def test_a_run_is_named_loss_and_seed_first():
    from aplab.train.identity import run_name

    cfg = from_flat({"loss.name": "nce+rce", "noise.spec": "symmetric:0.6", "runtime.seed": 0})
    assert run_name(cfg) == "nce+rce s0 sym0.6 digits"
    assert run_name(from_flat({"data.name": "cifar10", "noise.spec": "none", "runtime.seed": 12})) == "ce s12 clean cifar10"
    assert run_name(from_flat({"noise.spec": "asymmetric:0.4:cifar100_superclass"})) == \
        "ce s0 asym0.4-cifar100_superclass digits"
    assert run_name(from_flat({"noise.spec": "human:worst"})) == "ce s0 worst digits"
    assert run_name(cfg)[:10] == "nce+rce s0"  # what a UI keeps of a cut name still tells the seed


def test_a_logged_model_is_named_after_its_run():
    from aplab.tracking.mlflow_tracker import logged_model_name

    assert logged_model_name("nce+rce s0 sym0.6 digits") == "nce+rce s0 sym0_6 digits"
    assert logged_model_name("a/b:c%d'e\"f") == "a_b_c_d_e_f"
    assert logged_model_name(None) == "model"


def test_the_page_is_the_experiments_runs():
    from aplab.tracking.ui import runs_page

    assert runs_page("http://127.0.0.1:5000/", "7") == "http://127.0.0.1:5000/#/experiments/7/runs"
    assert runs_page("http://h:1", None) == "http://h:1/#/experiments?workflowType=machine_learning"


@pytest.fixture
def store(tmp_path, monkeypatch):
    from aplab.tracking.mlflow_tracker import MlflowTracker

    monkeypatch.chdir(tmp_path)
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for experiment in ("older", "newer"):
        run_id = tracker.start_run(experiment, "r", {})
        tracker.end_run(run_id, "FINISHED")
    tracker.start_run("newer-reports", "report", {})  # report experiments are never the one opened
    return tracker


def test_the_experiment_opened_is_the_named_one_else_the_latest(store):
    from aplab.errors import ConfigError
    from aplab.tracking.ui import experiment_to_open

    ids = {e.name: e.experiment_id for e in store.client.search_experiments()}
    assert experiment_to_open(store, "older") == ids["older"]
    assert experiment_to_open(store, None) == ids["newer"]
    with pytest.raises(ConfigError, match="^--experiment='nope'"):
        experiment_to_open(store, "nope")


@pytest.mark.slow
def test_sigterm_to_aplab_ui_stops_the_server_and_frees_its_port(store, tmp_path):
    port = free_port()
    ui = subprocess.Popen(aplab_command("ui", "--port", str(port), "--experiment", "older"), cwd=tmp_path,
                          env=aplab_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first, second = ui.stdout.readline(), ui.stdout.readline()
        older = store.client.get_experiment_by_name("older").experiment_id
        assert first.strip().endswith(f"http://127.0.0.1:{port}/#/experiments/{older}/runs")
        assert second.startswith(f"server log: {tmp_path / 'mlflow-ui.log'}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as reply:  # printed when serving
            assert reply.status == 200
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0
    finally:
        if ui.poll() is None:
            ui.kill()
    with socket.socket() as probe:  # the server and its workers are gone: the port can be bound again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # by a server (closed connections may linger)
        probe.bind(("127.0.0.1", port))
    assert (tmp_path / "mlflow-ui.log").stat().st_size > 0  # the server's output went to its file
    assert ui.stdout.read() == ""  # ... and not to the terminal
