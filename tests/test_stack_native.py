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
