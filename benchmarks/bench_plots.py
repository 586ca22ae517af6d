"""The three figures every run draws (transition and confusion matrices, curves): import and drawing time.

    python benchmarks/bench_plots.py [--repeats 5]

Prints the import time of the plotting module, then wall and CPU time of the three figures: the first
drawing (fonts and caches warm up) and the best of the next ones (a pipeline worker's later cells).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

KEYS = ("train/acc_noisy", "train/acc_clean", "val/acc", "test/acc", "train/loss", "val/loss", "test/loss",
        "train/memorised", "train/corrected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    from aplab.plotting.run import plot_curves, plot_matrix

    imported = time.perf_counter() - start
    rng = np.random.default_rng(0)
    history = [{"epoch": e, **{k: float(v) for k, v in zip(KEYS, rng.random(len(KEYS)))}} for e in range(1, 31)]
    matrix = rng.random((10, 10))
    folder = Path(tempfile.mkdtemp())
    times = []
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        plot_matrix(matrix, folder / "transition.png", "transition", "noisy label", "true label")
        plot_curves(history, folder / "curves.png", "a run")
        plot_matrix((matrix * 100).round(), folder / "confusion.png", "confusion", "predicted", "true", fmt=".0f")
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    later = min(times[1:]) if len(times) > 1 else times[0]
    print(f"import of the plotting module: {imported:.2f} s")
    print(f"three figures, first: {times[0][0]:.2f} s wall ({times[0][1]:.2f} s CPU); "
          f"later: {later[0]:.2f} s wall ({later[1]:.2f} s CPU)")


if __name__ == "__main__":
    main()
