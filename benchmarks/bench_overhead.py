"""Where a small run's wall time goes outside its epochs (issue 13).

Runs ``aplab train --dataset digits --epochs N`` in a fresh folder (a new SQLite store) inside this
process and splits its wall time, exclusively, into: imports, store set-up, data and model, epochs,
per-epoch logging, artifacts, tear-down and the rest. Then it runs a second cell (another seed) in the
same process, as a pipeline worker does, and prints that cell's time outside its epochs.

    python benchmarks/bench_overhead.py [--epochs 30] [--cell-epochs 5]

Each phase is timed by wrapping the functions named in PHASES (those missing from the tree are left
out); a phase started inside another one is subtracted from the outer one, so the rows add up.
"""

from __future__ import annotations

import argparse
import builtins
import functools
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()

#: phase -> the functions ("module:qualname") whose time it owns.
PHASES = {
    "store set-up": ["aplab.tracking:make_tracker", "aplab.tracking.mlflow_tracker:MlflowTracker.check",
                     "aplab.tracking.mlflow_tracker:MlflowTracker.client",
                     "aplab.train.recorder:RunRecorder.ensure_run"],
    "data and model": ["aplab.train.run:prepare_data", "aplab.train.run:make_batches",
                       "aplab.train.run:build_engine", "aplab.train.run:select_runtime"],
    "epochs": ["aplab.train.engine:Engine.epoch"],
    "per-epoch logging": ["aplab.train.run:save_epoch", "aplab.train.recorder:RunRecorder.push_pending",
                          "aplab.train.recorder:RunRecorder.save"],
    "artifacts": ["aplab.train.run:write_start_artifacts", "aplab.train.run:finalise",
                  "aplab.train.recorder:RunRecorder.push_artifacts"],
    "tear-down": ["aplab.train.recorder:RunRecorder.push_end"],
}


class Clock:
    """Exclusive wall time per phase: time inside a nested phase is charged to the inner one only."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.stack: list[str] = ["rest"]
        self.mark = time.perf_counter()

    def _switch(self) -> None:
        now = time.perf_counter()
        self.totals[self.stack[-1]] = self.totals.get(self.stack[-1], 0.0) + now - self.mark
        self.mark = now

    def enter(self, phase: str) -> None:
        self._switch()
        self.stack.append(phase)

    def leave(self) -> None:
        self._switch()
        self.stack.pop()

    def reset(self) -> dict[str, float]:
        self._switch()
        totals, self.totals = self.totals, {}
        return totals


CLOCK = Clock()
PENDING: dict[str, list[tuple[str, str]]] = {}  # module -> [(qualname, phase)] not yet wrapped


def timed(phase: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        CLOCK.enter(phase)
        try:
            return function(*args, **kwargs)
        finally:
            CLOCK.leave()

    wrapper.__wrapped_phase__ = phase
    return wrapper


def wrap(module_name: str, qualname: str, phase: str) -> None:
    """Replace the function in its module or class, and in every aplab module that imported it by name."""
    module = sys.modules[module_name]
    owner_name, _, attr = qualname.rpartition(".")
    owner = functools.reduce(getattr, owner_name.split("."), module) if owner_name else module
    original = owner.__dict__.get(attr) if owner_name else getattr(module, attr, None)
    if original is None or hasattr(original, "__wrapped_phase__"):
        return
    if isinstance(original, property):
        setattr(owner, attr, property(timed(phase, original.fget)))
        return
    if isinstance(original, functools.cached_property):
        replacement = functools.cached_property(timed(phase, original.func))
        replacement.__set_name__(owner, attr)
        setattr(owner, attr, replacement)
        return
    replacement = timed(phase, original)
    setattr(owner, attr, replacement)
    if not owner_name:
        for name, other in list(sys.modules.items()):
            if name.startswith("aplab") and getattr(other, attr, None) is original:
                setattr(other, attr, replacement)


def apply_pending() -> None:
    for module_name in [m for m in PENDING if m in sys.modules]:
        for qualname, phase in PENDING.pop(module_name):
            wrap(module_name, qualname, phase)


def install() -> None:
    """Wrap every phase function, now or as soon as its module is imported; time every import."""
    for phase, targets in PHASES.items():
        for target in targets:
            module_name, qualname = target.split(":")
            PENDING.setdefault(module_name, []).append((qualname, phase))
    apply_pending()
    original_import = builtins.__import__
    depth = [0]

    def timed_import(*args, **kwargs):
        if depth[0]:
            return original_import(*args, **kwargs)
        depth[0] += 1
        CLOCK.enter("imports")
        try:
            return original_import(*args, **kwargs)
        finally:
            CLOCK.leave()
            depth[0] -= 1
            if PENDING:
                apply_pending()

    builtins.__import__ = timed_import


def show(title: str, totals: dict[str, float], wall: float) -> None:
    print(f"\n{title}: {wall:.2f} s wall, {wall - totals.get('epochs', 0.0):.2f} s outside the epochs")
    for phase in ["imports", *PHASES, "rest"]:
        print(f"  {phase:<18} {totals.get(phase, 0.0):7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--cell-epochs", type=int, default=5, help="epochs of the pipeline-worker cell")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aplab-overhead-"))
    os.chdir(folder)
    install()
    CLOCK.mark = T0  # the interpreter's own start-up before this line is not aplab's
    start = time.perf_counter()
    cli = importlib.import_module("aplab.cli")
    CLOCK.totals["imports"] = CLOCK.totals.get("imports", 0.0) + time.perf_counter() - start
    CLOCK.mark = time.perf_counter()
    code = cli.main(["train", "--dataset", "digits", "--epochs", str(args.epochs), "--no-progress"])
    wall = time.perf_counter() - start
    assert code == 0, f"aplab train exited {code}"
    show(f"aplab train --dataset digits --epochs {args.epochs} (fresh folder {folder})", CLOCK.reset(), wall)
    show(f"pipeline-worker cell: train() of {args.cell_epochs} epochs, another seed, warm process and tracker",
         *worker_cell(args.cell_epochs))


def worker_cell(epochs: int) -> tuple[dict[str, float], float]:
    """One more cell in this (warm) process with a tracker made once, as pipeline workers do."""
    from aplab.config import RunConfig, apply
    from aplab.tracking import make_tracker
    from aplab.train import train

    tracker = make_tracker(None)
    cfg = RunConfig()
    for key, value in {"data.name": "digits", "optim.epochs": epochs, "runtime.seed": 1}.items():
        apply(cfg, key, value)
    CLOCK.reset()
    start = time.perf_counter()
    result = train(cfg, tracker, progress=False)
    wall = time.perf_counter() - start
    assert str(result.status) == "FINISHED", result.status
    return CLOCK.reset(), wall


if __name__ == "__main__":
    main()
