"""What a new SQLite tracking store costs, and whether processes racing on one survive (issues 13, 15.1).

    PYTHONPATH=platform python benchmarks/bench_store.py [--repeat 3] [--race 4]

Prints: MLflow importing, a store made by MLflow's migrations, the one-off template, a store copied
from it, opening an existing store, and logging a small model as a LoggedModel (first call in a
process, then later calls); with --race N, N processes started together on a new store with plain
MLflow and with aplab's lock (how many fail).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RACER = """
import sys
from mlflow import MlflowClient
aplab = sys.argv[2] == "aplab"
if aplab:
    from aplab.tracking.mlflow_tracker import MlflowTracker
print("ready", flush=True)
sys.stdin.readline()
if aplab:
    tracker = MlflowTracker(sys.argv[1])
    tracker.check()
    tracker.start_run("race", None, {})
else:
    client = MlflowClient(sys.argv[1])
    client.search_experiments(max_results=1)
    client.create_run(client.get_experiment_by_name("Default").experiment_id)
"""


def row(label: str, value: float, note: str) -> None:
    print(f"{label:<40}{value:6.2f} s  {note}")


def seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def race(n: int, how: str, folder: Path) -> int:
    """Start n processes on one new store at the same moment; the number that failed."""
    db = folder / f"race-{how}.db"
    env = {**os.environ, "APLAB_CACHE": str(folder / f"cache-{how}")}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, f"sqlite:///{db}", how], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    for proc in procs:
        proc.stdout.readline()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return sum(proc.wait() != 0 for proc in procs)


def log_model_seconds(db: Path, repeat: int) -> list[float]:
    """Seconds of each of 1 + repeat log_model calls of a small CNN into one run of ``db``."""
    import torch

    from aplab.tracking.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(f"sqlite:///{db}")
    run_id = tracker.start_run("bench", None, {})
    tracker.log_metrics(run_id, [(1, {"test/acc": 0.5, "val/acc": 0.5})])
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(32 * 6 * 6, 10))
    return [seconds(lambda i=i: tracker.log_model(run_id, model, name=f"model-{i}")) for i in range(1 + repeat)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--race", type=int, default=0, metavar="N")
    args = parser.parse_args()

    import_s = seconds(lambda: __import__("mlflow"))
    from aplab.tracking.mlflow_tracker import default_artifacts, open_store
    from aplab.tracking.sqlite_store import prepare_store, sqlite_uri

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["APLAB_CACHE"] = str(folder / "cache")
        migrate = [seconds(lambda i=i: open_store(sqlite_uri(folder / f"migrated-{i}.db"))) for i in range(args.repeat)]
        template = seconds(lambda: prepare_store(folder / "first.db", mlflow.__version__, open_store,
                                                 default_artifacts()))
        copied = [seconds(lambda i=i: prepare_store(folder / f"copied-{i}.db", mlflow.__version__, open_store,
                                                    default_artifacts())) for i in range(args.repeat)]
        existing = [seconds(lambda i=i: prepare_store(folder / f"migrated-{i}.db", mlflow.__version__, open_store,
                                                      default_artifacts())) for i in range(args.repeat)]
        print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}, mlflow {mlflow.__version__}")
        row("import mlflow", import_s, "")
        row("new store by MLflow's migrations", statistics.median(migrate), f"(median of {args.repeat})")
        row("first aplab store (makes the template)", template, "(once per MLflow version)")
        row("new aplab store (template copy)", statistics.median(copied), f"(median of {args.repeat})")
        row("existing store, opened under the lock", statistics.median(existing), "(already open here)")
        model_s = log_model_seconds(folder / "copied-0.db", args.repeat)
        row("log_model, first in a process", model_s[0], "(MLflow scans installed packages once)")
        row("log_model, later", statistics.median(model_s[1:]), f"(median of {args.repeat})")
        if args.race:
            for how in ("mlflow", "aplab"):
                failed = race(args.race, how, folder)
                print(f"{args.race} processes at once on a new store, {how:6}: {failed} failed")


if __name__ == "__main__":
    main()
