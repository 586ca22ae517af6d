"""Issue 15.1: any number of aplab processes may start together on a new SQLite store.

Real processes: each imports MLflow, says it is ready, and waits for one shared "go" on stdin, so
they open the new store at the same moment (a barrier, not a sleep).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import sys
from aplab.tracking.mlflow_tracker import MlflowTracker
tracker = MlflowTracker(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
tracker.check()
run_id = tracker.start_run("together", None, {"worker": sys.argv[2]})
tracker.log_metrics(run_id, [(1, {"a": float(sys.argv[2])})])
tracker.end_run(run_id, "FINISHED")
print(run_id, flush=True)
"""


def start_together(uri: str, n: int, cache: Path, cwd: Path) -> list[tuple[int, str, str]]:
    """Run n workers on ``uri`` released at once; (exit status, stdout, stderr) of each."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "platform"), "APLAB_CACHE": str(cache)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, uri, str(i)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
               for i in range(n)]
    try:
        for worker in workers:
            assert worker.stdout.readline() == "ready\n", worker.communicate()[1][-3000:]
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        return [(w.wait(timeout=600), w.stdout.read(), w.stderr.read()) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


def check_store(db: Path, n: int, results: list[tuple[int, str, str]]) -> None:
    from mlflow import MlflowClient

    for status, _, err in results:
        assert status == 0, err[-3000:]
    run_ids = {out.split()[-1] for _, out, _ in results}
    assert len(run_ids) == n
    client = MlflowClient(f"sqlite:///{db}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "together"]
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in runs} == run_ids
    assert sorted(r.data.metrics["a"] for r in runs) == [float(i) for i in range(n)]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_processes_started_together_on_a_new_store_all_succeed(tmp_path):
    """The template is made by one of them and copied once; the others wait and use the store."""
    db = tmp_path / "new" / "mlflow.db"
    cache = tmp_path / "cache"
    n = 4
    check_store(db, n, start_together(f"sqlite:///{db}", n, cache, tmp_path))
    assert len(list(cache.glob("mlflow-store-*.db"))) == 1


@pytest.mark.slow
def test_without_a_template_cache_the_lock_alone_serialises_the_migrations(tmp_path):
    """A cache that cannot be written (here a file) leaves each store to migrate in place, one at a time."""
    db = tmp_path / "mlflow.db"
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("")
    n = 4
    check_store(db, n, start_together(f"sqlite:///{db}", n, not_a_folder, tmp_path))


# ----------------------------------------------------------------------------- what aplab uses of MLflow


def test_is_missing_reads_the_error_code_string_of_mlflow_exceptions():
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    from aplab.tracking.mlflow_adapter import is_missing

    gone = MlflowException("Run 'x' not found", error_code=databricks_pb2.RESOURCE_DOES_NOT_EXIST)
    refused = MlflowException("bad value", error_code=databricks_pb2.INVALID_PARAMETER_VALUE)
    assert is_missing(gone) and not is_missing(refused)


def test_a_real_lookup_of_an_unknown_run_is_missing_and_a_copied_store_is_adopted(tmp_path, monkeypatch):
    """On a store MLflow made: its error for an unknown run, and its ``experiments`` table that
    ``adopt_default_experiment`` updates (the Default experiment's artifact location and creation time)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from aplab.tracking.mlflow_adapter import adopt_default_experiment, is_missing

    monkeypatch.chdir(tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path / 'made.db'}")
    before = client.get_experiment("0")
    with pytest.raises(MlflowException) as raised:
        client.get_run("0" * 32)
    assert is_missing(raised.value)
    copy = tmp_path / "copy.db"
    copy.write_bytes((tmp_path / "made.db").read_bytes())
    adopt_default_experiment(copy, str(tmp_path / "elsewhere" / "0"))
    adopted = MlflowClient(f"sqlite:///{copy}").get_experiment("0")
    assert adopted.artifact_location == str(tmp_path / "elsewhere" / "0") != before.artifact_location
    assert adopted.creation_time >= before.creation_time and adopted.last_update_time >= adopted.creation_time


def test_the_system_metrics_monitor_samples_into_the_run_it_names(tmp_path, monkeypatch):
    pytest.importorskip("psutil")
    from mlflow import MlflowClient

    from aplab.tracking.mlflow_adapter import system_metrics_monitor

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'made.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "system/cpu_utilization_percentage", 1.0, step=2)
    monitor = system_metrics_monitor(run_id, uri, resume=True)
    monitor.publish_metrics({"cpu_utilization_percentage": 5.0})
    monitor.finish()
    steps = [(m.step, m.value) for m in client.get_metric_history(run_id, "system/cpu_utilization_percentage")]
    assert sorted(steps) == [(2, 1.0), (3, 5.0)]
