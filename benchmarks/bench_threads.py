"""The quickstart's wall time idle and beside busy cores (issue 24, item 1): a run's threads are the free cores.

    python benchmarks/bench_threads.py [--busy 1] [--epochs 60] [--old]
    python benchmarks/bench_threads.py --single [--repeats 3]

Runs ``aplab quickstart`` (a fresh store and folder each time) with nothing else running, then beside
``--busy`` processes that each spin one core (``while True: pass``), and prints both wall times and their
ratio. ``--old`` adds a third run beside the busy loops with OMP_NUM_THREADS set to every allowed core: a
thread per core, as before threads were chosen from the free cores. ``--epochs`` shortens each run (a
pipeline copy with that override) to keep the measurement short. ``--single`` measures instead what the
issue did: the median epoch of one 10-epoch digits run (NCE+RCE, 60% noise), idle, beside the busy loops,
and beside them with a thread per core; the three alternate ``--repeats`` times, so load from other
work on a shared machine falls on all three alike.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def quickstart(folder: Path, epochs: int | None, env: dict[str, str]) -> float:
    """Wall seconds of the quickstart pipeline (optionally shortened) in a fresh folder."""
    from aplab.pipeline.quickstart import QUICKSTART

    folder.mkdir(parents=True)
    spec = yaml.safe_load(QUICKSTART.read_text())
    if epochs is not None:
        spec["overrides"]["optim.epochs"] = epochs
    (folder / "quickstart.yaml").write_text(yaml.safe_dump(spec))
    if epochs is None:
        command = [sys.executable, "-m", "aplab.cli", "quickstart", "--tracking-uri", "sqlite:///q.db"]
    else:
        command = [sys.executable, "-m", "aplab.cli", "pipeline", "run", "quickstart.yaml", "--tracking-uri",
                   "sqlite:///q.db", "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_epoch(folder: Path, env: dict[str, str]) -> float:
    """Median seconds per epoch of one 10-epoch digits run trained in a fresh folder."""
    import csv
    import statistics

    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "aplab.cli", "train", "--loss", "nce+rce", "--noise", "symmetric:0.6", "--epochs",
               "10", "--offline", "--no-progress", "--workdir", "runs"]
    subprocess.run(command, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    (metrics,) = folder.glob("runs/*/*/artifacts/metrics.csv")
    with open(metrics, newline="") as handle:
        return statistics.median(float(row["time/epoch_s"]) for row in csv.DictReader(handle))


def single(args: argparse.Namespace, root: Path, env: dict[str, str], cores: int) -> None:
    """Idle, busy (threads chosen) and busy with a thread per core, alternating; medians over the repeats."""
    import statistics

    times: dict[str, list[float]] = {"idle": [], "busy": [], "busy, a thread a core": []}
    for repeat in range(args.repeats):
        times["idle"].append(median_epoch(root / f"idle{repeat}", env))
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            time.sleep(1.0)  # let the spinners take their cores before the run samples which are free
            times["busy"].append(median_epoch(root / f"busy{repeat}", env))
            old = {**env, "OMP_NUM_THREADS": str(cores)}
            times["busy, a thread a core"].append(median_epoch(root / f"old{repeat}", old))
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
        print(f"repeat {repeat}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    idle = statistics.median(times["idle"])
    for name, values in times.items():
        print(f"median epoch, {name:22s} {statistics.median(values):.3f} s  ({statistics.median(values) / idle:.2f}x idle)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="processes spinning one core each")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the quickstart's 60)")
    parser.add_argument("--old", action="store_true", help="also: a thread per allowed core beside the busy loops")
    parser.add_argument("--single", action="store_true", help="median epoch of one 10-epoch run instead")
    parser.add_argument("--repeats", type=int, default=3, help="with --single: rounds of the three conditions")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    env = {**os.environ, "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
    env.pop("OMP_NUM_THREADS", None)
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} allowed cores, load average {os.getloadavg()[0]:.2f} before the idle run")
    if args.single:
        single(args, root, env, cores)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        return
    idle = quickstart(root / "idle", args.epochs, env)
    print(f"idle:            {idle:7.1f} s")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        time.sleep(1.0)  # let the spinners take their cores before the run samples which are free
        busy = quickstart(root / "busy", args.epochs, env)
        print(f"beside {args.busy} busy:   {busy:7.1f} s  ({busy / idle:.2f}x idle)")
        if args.old:
            old = quickstart(root / "old", args.epochs, {**env, "OMP_NUM_THREADS": str(cores)})
            print(f"a thread a core: {old:7.1f} s  ({old / idle:.2f}x idle)")
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


if __name__ == "__main__":
    main()
