"""The quickstart's wall time idle and beside busy cores (issue 24, item 1): a run's threads are the free cores.

    python benchmarks/bench_threads.py [--busy 1] [--epochs 60] [--old]

Runs ``aplab quickstart`` (a fresh store and folder each time) with nothing else running, then beside
``--busy`` processes that each spin one core (``while True: pass``), and prints both wall times and their
ratio. ``--old`` adds a third run beside the busy loops with OMP_NUM_THREADS set to every allowed core: a
thread per core, as before threads were chosen from the free cores. ``--epochs`` shortens each run (a
pipeline copy with that override) to keep the measurement short.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="processes spinning one core each")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the quickstart's 60)")
    parser.add_argument("--old", action="store_true", help="also: a thread per allowed core beside the busy loops")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    env = {**os.environ, "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
    env.pop("OMP_NUM_THREADS", None)
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} allowed cores, load average {os.getloadavg()[0]:.2f} before the idle run")
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
