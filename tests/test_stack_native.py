"""The tracking stack, natively: what MLflow and Optuna write really lands in PostgreSQL and the server.

Every check reads back through a different path than the one that wrote: MLflow's REST API and
artifact proxy (not the client library), the artifact directory on disk, and SQL on PostgreSQL.
"""

from __future__ import annotations

import importlib
import uuid
from pathlib import Path

import pytest

# The stack fixtures are a plugin, so one PostgreSQL + mlflow server serves every module of a
# session (tests/conftest.py puts the repository root on sys.path).
pytest_plugins = ["tests.stack"]

pytestmark = pytest.mark.stack


def test_postgres_holds_the_compose_databases(postgres):
    """The init script shared with the postgres image created Optuna's and the auth database."""
    names = postgres.query("postgres", "SELECT datname FROM pg_database WHERE NOT datistemplate")
    assert {"mlflow", "optuna", "mlflow_auth"} <= set(names)


def test_client_run_arrives_over_rest_and_artifact_proxy(mlflow_server, mlflow_rest, postgres, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    name = f"stack-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(name)
    run_id = client.create_run(exp_id, run_name="three-epochs").info.run_id
    client.log_param(run_id, "optim.lr", "0.1")
    losses = [2.25, 1.5, 0.75]
    for step, value in enumerate(losses):
        client.log_metric(run_id, "train/loss", value, step=step)
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,train/loss\n0,2.25\n1,1.5\n2,0.75\n")
    weights = tmp_path / "state_dict.pt"
    payload = bytes(range(256)) * 64
    weights.write_bytes(payload)
    client.log_artifact(run_id, str(csv))
    client.log_artifact(run_id, str(weights), artifact_path="model")
    client.set_terminated(run_id)

    experiment = mlflow_rest.experiment_by_name(name)
    assert experiment["experiment_id"] == exp_id
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")  # proxied, not a path

    runs = mlflow_rest.search_runs([exp_id])
    assert [r["info"]["run_id"] for r in runs] == [run_id]
    assert runs[0]["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in runs[0]["data"]["params"]} == {"optim.lr": "0.1"}

    history = mlflow_rest.metric_history(run_id, "train/loss")
    assert [(int(m["step"]), m["value"]) for m in history] == [(0, 2.25), (1, 1.5), (2, 0.75)]

    assert mlflow_rest.artifact_paths(run_id) == ["metrics.csv", "model/state_dict.pt"]
    assert mlflow_rest.download_artifact(run_id, "metrics.csv") == csv.read_bytes()
    assert mlflow_rest.download_artifact(run_id, "model/state_dict.pt") == payload
    # The proxy stored the bytes under the script's --artifacts-destination.
    stored = Path(mlflow_server.artifacts_dir) / exp_id / run_id / "artifacts" / "model" / "state_dict.pt"
    assert stored.read_bytes() == payload
    # And the run itself lives in PostgreSQL's mlflow database, not a default SQLite file.
    rows = postgres.query("mlflow", f"SELECT status FROM runs WHERE run_uuid = '{run_id}'")
    assert rows == ["FINISHED"]


def test_two_processes_fill_one_optuna_study_on_postgres(optuna_storage, postgres):
    import optuna

    name = f"stack-{uuid.uuid4().hex[:8]}"
    optuna.create_study(storage=optuna_storage, study_name=name, direction="minimize")

    stack = importlib.import_module(pytest_plugins[0])  # imported by pytest as a plugin already
    exit_codes = stack.run_optuna_workers(optuna_storage, name, n_workers=2, trials_per_worker=3)
    assert exit_codes == [0, 0]

    trials = optuna.load_study(study_name=name, storage=optuna_storage).get_trials()
    assert len(trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(6))
    for t in trials:
        assert t.value == pytest.approx(t.params["x"] ** 2, abs=1e-12)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both worker processes wrote trials
    complete = postgres.query(
        "optuna",
        "SELECT count(*) FROM trials JOIN studies USING (study_id) "
        f"WHERE study_name = '{name}' AND state = 'COMPLETE'",
    )
    assert complete == ["6"]


# --- aplab itself against the stack -------------------------------------------------------------

import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

from tests.helpers import aplab_command, aplab_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = aplab_env()


def run_aplab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(aplab_command(*args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def steps_of(rest, run_id: str, key: str) -> list[int]:
    return sorted(int(m["step"]) for m in rest.metric_history(run_id, key))


def test_aplab_train_logs_a_complete_run_to_the_server(mlflow_server, mlflow_rest, tmp_path):
    exp = f"train-{uuid.uuid4().hex[:8]}"
    run_aplab("train", "--dataset", "digits", "--loss", "nce+rce", "--noise", "symmetric:0.4", "--epochs", "2",
              "--tracking-uri", mlflow_server.url, "--experiment", exp, "--workdir", str(tmp_path / "runs"),
              "--no-progress", cwd=tmp_path)
    (run,) = mlflow_rest.search_runs([mlflow_rest.experiment_by_name(exp)["experiment_id"]])
    run_id = run["info"]["run_id"]
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["loss.name"] == "nce+rce" and params["noise.spec"] == "symmetric:0.4"
    for key in ("train/loss", "train/memorised", "val/acc", "test/acc"):
        assert steps_of(mlflow_rest, run_id, key) == [1, 2], key
    artifacts = set(mlflow_rest.artifact_paths(run_id))
    assert {"config.yaml", "metrics.csv", "curves.png", "confusion.png", "transition.csv", "transition.png"} <= artifacts
    assert len(run["outputs"]["model_outputs"]) == 1  # the final model, an MLflow LoggedModel of this run
    rows = list(csv.DictReader(io.StringIO(mlflow_rest.download_artifact(run_id, "metrics.csv").decode())))
    history = sorted(mlflow_rest.metric_history(run_id, "val/acc"), key=lambda m: int(m["step"]))
    assert [float(r["val/acc"]) for r in rows] == pytest.approx([m["value"] for m in history])
    transition = np.loadtxt(io.StringIO(mlflow_rest.download_artifact(run_id, "transition.csv").decode()),
                            delimiter=",")
    assert np.allclose(transition.sum(axis=1), 1.0, atol=1e-5) and np.allclose(np.diag(transition), 0.6, atol=0.02)
    assert mlflow_rest.download_artifact(run_id, "curves.png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_aplab_study_on_postgres_nests_every_trial_under_one_parent(mlflow_server, mlflow_rest, optuna_storage, tmp_path):
    import optuna

    exp, name = f"study-{uuid.uuid4().hex[:8]}", f"grid-{uuid.uuid4().hex[:8]}"
    run_aplab("study", "--space", str(REPO / "search_spaces" / "apl_paper_grid.yaml"), "--dataset", "digits",
              "--loss", "nce+rce", "--noise", "symmetric:0.4", "--set", "optim.epochs=1", "--storage", optuna_storage,
              "--workers", "2", "--tracking-uri", mlflow_server.url, "--experiment", exp, "--study-name", name,
              "--workdir", str(tmp_path / "runs"), cwd=tmp_path)
    trials = optuna.load_study(study_name=name, storage=optuna_storage).get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [(t.number, t.state.name) for t in trials if t not in complete] == [], \
        [t.user_attrs.get("aplab.retry_reason") for t in trials]  # no trial crashed and ran again
    assert len(complete) == 12
    assert len({(t.params["loss.alpha"], t.params["loss.beta"]) for t in complete}) == 12
    runs = mlflow_rest.search_runs([mlflow_rest.experiment_by_name(exp)["experiment_id"]])
    tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs}
    parents = [run_id for run_id, t in tags.items() if "mlflow.parentRunId" not in t]
    assert len(parents) == 1
    assert sum(t.get("mlflow.parentRunId") == parents[0] for t in tags.values()) == 12


def _log_digits_dataset(uri: str, experiment: str, barrier, results) -> None:
    """One of two processes that create a run, wait for each other, then log the same new dataset."""
    from aplab.tracking.base import DatasetRecord
    from aplab.tracking.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(uri)
    run_id = tracker.start_run(experiment, "same-dataset", {})
    barrier.wait()
    try:
        tracker.log_dataset(run_id, DatasetRecord("digits/train", "d1g1t5", "sklearn:load_digits", 1437))
        results.put((run_id, "ok"))
    except Exception as err:  # noqa: BLE001 - reported to the test
        results.put((run_id, f"{type(err).__name__}: {err}"[:300]))


def test_two_processes_log_one_new_dataset_at_the_same_moment(mlflow_server, mlflow_rest):
    """MLflow looks a dataset up, then inserts it: the second of two simultaneous writers hits the unique key
    (a study's workers start their first trials together); aplab sends it again and both runs hold it."""
    import multiprocessing

    experiment = f"datasets-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_log_digits_dataset, args=(mlflow_server.url, experiment, barrier, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join()
    assert list(outcomes.values()) == ["ok", "ok"]
    for run_id in outcomes:
        inputs = mlflow_rest.get_run(run_id)["inputs"]["dataset_inputs"]
        assert [(i["dataset"]["name"], i["dataset"]["digest"]) for i in inputs] == [("digits/train", "d1g1t5")]


EPOCH_LINE = re.compile(r"^(?:\[aplab\] )?epoch\s+(\d+)/\d+")


def read_until_epoch(process: subprocess.Popen, epoch: int, seen: list[str]) -> int:
    """Read the run's output until it reports an epoch >= ``epoch`` (its state is saved by then); that epoch.

    The run's own per-epoch line is the signal: no polling, no sleep.
    """
    for line in process.stdout:
        seen.append(line)
        if (match := EPOCH_LINE.match(line)) and int(match.group(1)) >= epoch:
            return int(match.group(1))
    raise AssertionError(f"the run ended before epoch {epoch}:\n{''.join(seen)[-3000:]}")


def test_a_server_outage_mid_run_costs_no_epoch(mlflow_server, mlflow_rest, tmp_path):
    """The real server is stopped mid-run: training goes on, and every epoch reaches it exactly once."""
    exp = f"outage-{uuid.uuid4().hex[:8]}"
    epochs = 16
    runs = tmp_path / "runs"
    # Without --no-progress (and off a TTY) the run writes one line per epoch: the test's clock.
    command = aplab_command("train", "--dataset", "digits", "--loss", "nce+rce", "--noise", "symmetric:0.4",
                            "--epochs", str(epochs), "--set", "optim.batch_size=8", "--tracking-uri",
                            mlflow_server.url, "--experiment", exp, "--workdir", str(runs))
    process = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    seen: list[str] = []
    try:
        read_until_epoch(process, 2, seen)
        process.send_signal(signal.SIGSTOP)  # the run waits while the server stops: epochs are left to train
        mlflow_server.stop()
        stopped_at = json.loads(next(runs.rglob("state.json")).read_text())["history"][-1]["epoch"]
        assert 2 <= stopped_at <= epochs - 2  # the precondition: the server went down mid-run
        process.send_signal(signal.SIGCONT)
        assert read_until_epoch(process, stopped_at + 2, seen) >= stopped_at + 2  # training goes on without it
    finally:
        process.send_signal(signal.SIGCONT)
        mlflow_server.start()
    rest, _ = process.communicate(timeout=600)
    output = "".join(seen) + rest
    assert process.returncode == 0, output[-3000:]
    assert "tracking unavailable" in output
    run_aplab("sync", "--tracking-uri", mlflow_server.url, "--workdir", str(runs), cwd=tmp_path)  # idempotent
    (run,) = mlflow_rest.search_runs([mlflow_rest.experiment_by_name(exp)["experiment_id"]])
    run_id = run["info"]["run_id"]
    for key in ("train/loss", "val/acc", "test/acc"):
        assert steps_of(mlflow_rest, run_id, key) == list(range(1, epochs + 1)), key  # none missing or doubled
    assert mlflow_rest.get_run(run_id)["info"]["status"] == "FINISHED"
    assert "curves.png" in set(mlflow_rest.artifact_paths(run_id))


def test_an_unreachable_server_fails_before_training(tmp_path):
    proc = subprocess.run(aplab_command("train", "--dataset", "digits", "--epochs", "1", "--tracking-uri",
                                        "http://127.0.0.1:9", "--workdir", str(tmp_path / "runs")),
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "unreachable" in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line, no traceback
    assert not (tmp_path / "runs").exists()  # checked before anything was trained or written
