"""Runs per hour of a small cnn8 digits pipeline against worker processes per GPU (issue 14).

Writes a pipeline of short cells (digits, cnn8, two losses x seeds) into a fresh temporary folder for each
setting and times the real command, `aplab pipeline run FILE`, end to end (process start, store set-up,
every cell trained). Settings are interleaved over ``--repeats`` rounds (1, 2, 4, 1, 2, 4, ...) so a load
change on a shared machine does not land on one setting only; each row is the median wall time, with the
1-minute load average seen before and after each measurement. On a GPU machine the settings are
`--runs-per-gpu 1, 2, 4` over every visible GPU; on a CPU machine `--gpus none --workers 1, 2` (the GPU
numbers are then still to be taken).

    python benchmarks/bench_runs_per_gpu.py [--seeds 4] [--epochs 5] [--settings 1,2,4] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = """\
name: bench-runs-per-gpu
description: short cnn8 cells on the embedded digits, to count runs per hour
experiment: bench-runs-per-gpu
matrix:
  dataset: [digits]
  noise: [symmetric:0.4]
  loss: [ce, nce+rce]
  seed: [{seeds}]
overrides:
  model.name: cnn8
  optim.epochs: {epochs}
"""


def machine() -> str:
    """CPU model and cores, and the GPUs when there are some."""
    import torch

    cpu = platform.processor() or "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), flags=re.MULTILINE)
        cpu = names[0] if names else cpu
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"{cpu}, {os.cpu_count()} cores, " + (f"{len(gpus)} x {gpus[0]}" if gpus else "no GPU")


def run_setting(flags: list[str], seeds: int, epochs: int) -> float:
    """Wall seconds of one `aplab pipeline run` of the whole matrix in a fresh folder and store."""
    with tempfile.TemporaryDirectory(prefix="bench_rpg_") as folder:
        pipeline = Path(folder) / "pipeline.yaml"
        pipeline.write_text(PIPELINE.format(seeds=", ".join(map(str, range(seeds))), epochs=epochs))
        command = [sys.executable, "-m", "aplab.cli", "pipeline", "run", str(pipeline), "--no-progress",
                   "--tracking-uri", f"sqlite:///{folder}/mlflow.db", "--workdir", f"{folder}/runs", *flags]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        wall = time.perf_counter() - start
    cells = 2 * seeds
    if done.returncode != 0 or f"{cells} trained now" not in done.stdout:
        raise SystemExit(f"{' '.join(flags)}: the pipeline did not train its {cells} cells "
                         f"(exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return wall


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per loss; the pipeline has 2 x seeds cells")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the settings (median per setting)")
    parser.add_argument("--settings", help="comma-separated K (GPU: runs per GPU, default 1,2,4; "
                                           "CPU: workers, default 1,2)")
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available()
    settings = [int(k) for k in (args.settings or ("1,2,4" if on_gpu else "1,2")).split(",")]
    cells = 2 * args.seeds
    print(f"machine: {machine()}")
    print(f"pipeline: {cells} cells (digits, cnn8, {args.epochs} epochs), `aplab pipeline run` end to end",
          flush=True)
    walls: dict[int, list[float]] = {k: [] for k in settings}
    loads: dict[int, list[float]] = {k: [] for k in settings}
    for _ in range(args.repeats):
        for k in settings:
            flags = ["--gpus", "auto", "--runs-per-gpu", str(k)] if on_gpu else ["--gpus", "none", "--workers", str(k)]
            loads[k].append(os.getloadavg()[0])
            walls[k].append(run_setting(flags, args.seeds, args.epochs))
            loads[k].append(os.getloadavg()[0])
            print(f"  {' '.join(flags)}: {walls[k][-1]:.1f} s (load {loads[k][-2]:.1f} -> {loads[k][-1]:.1f})",
                  flush=True)
    label = "runs-per-gpu" if on_gpu else "workers (CPU)"
    print(f"{label:>14} {'wall s (median)':>16} {'runs/hour':>10}  each wall s; load average 1 min")
    for k in settings:
        wall = statistics.median(walls[k])
        each = ", ".join(f"{w:.1f}" for w in walls[k])
        load = f"{min(loads[k]):.1f}-{max(loads[k]):.1f}"
        print(f"{k:>14} {wall:>16.1f} {cells / wall * 3600:>10.0f}  {each}; load {load}")
    if not on_gpu:
        print("no GPU here: the --runs-per-gpu 1, 2, 4 numbers are still to be taken on a GPU machine")


if __name__ == "__main__":
    main()
