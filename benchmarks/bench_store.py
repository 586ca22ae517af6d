"""What a new SQLite tracking store costs, and whether processes racing on one survive (issues 13, 15.1).

    PYTHONPATH=platform python benchmarks/bench_store.py [--repeat 3] [--race 4]

Prints: MLflow importing, a store made by MLflow's migrations, the one-off template, a store copied
from it, and opening an existing store; with --race N, N processes started together on a new store
with plain MLflow and with aplab's lock (how many fail).
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
        print(f"import mlflow                          {import_s:6.2f} s")
        print(f"new store by MLflow's migrations       {statistics.median(migrate):6.2f} s  (median of {args.repeat})")
        print(f"first aplab store (makes the template) {template:6.2f} s  (once per MLflow version)")
        print(f"new aplab store (template copy)        {statistics.median(copied):6.2f} s  (median of {args.repeat})")
        print(f"existing store, opened under the lock  {statistics.median(existing):6.2f} s  (already open here)")
        if args.race:
            for how in ("mlflow", "aplab"):
                failed = race(args.race, how, folder)
                print(f"{args.race} processes at once on a new store, {how:6}: {failed} failed")


if __name__ == "__main__":
    main()
