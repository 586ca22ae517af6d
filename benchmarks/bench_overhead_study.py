"""Per-trial overhead of a study worker outside its epochs (issue 13): a worker pays imports once per
process, then each trial costs its epochs plus this overhead.

Runs one in-process worker (what ``aplab study --workers 1`` runs; each of N workers runs the same
loop) over a small alpha x beta grid on `digits`, tracked in a fresh SQLite MLflow store with a
journal Optuna storage, and prints: the one-off imports and study set-up, then per trial the wall
time split into epochs (the engine's ``time/epoch_s``: train + evaluation), the rest of ``train()``
(data, model, run start, artifacts, end), claiming the trial, recording its outcome and updating
the study run (table, heat-map, tags).

    python benchmarks/bench_overhead_study.py --epochs 1 --alphas 0.1 1 10 --betas 0.1 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))  # run without installing


def timed(spent: dict[str, list[float]], key: str, function: Callable) -> Callable:
    """``function`` that adds the seconds of each call to ``spent[key]``."""
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[key].append(time.perf_counter() - start)
    return wrapper


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    start = time.perf_counter()
    import mlflow  # noqa: F401 - the imports a worker pays once
    import optuna
    import torch

    from aplab.config import RunConfig, apply
    from aplab.keys import M
    from aplab.study import runner
    from aplab.study.runner import StudyOptions
    imports_s = time.perf_counter() - start
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    spent: dict[str, list[float]] = defaultdict(list)
    for name, key in (("run_trial", "trial (train + suggest)"), ("claim_trial", "claim (ask, under the lock)"),
                      ("mark_owner", "claim (owner attributes)"), ("_tell", "tell (outcome + attributes)"),
                      ("update_parent", "study run (table, heat-map, tags)")):
        setattr(runner, name, timed(spent, key, getattr(runner, name)))  # the worker loop looks them up here

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        space = tmp / "grid.yaml"
        space.write_text(f"grid:\n  loss.alpha: {args.alphas}\n  loss.beta: {args.betas}\n")
        cfg = RunConfig()
        for key, value in {"data.name": "digits", "loss.name": "nce+rce", "noise.spec": "symmetric:0.6",
                           "optim.epochs": args.epochs, "optim.batch_size": 256, "tracking.log_model": False,
                           "tracking.uri": f"sqlite:///{tmp / 'mlflow.db'}", "tracking.workdir": str(tmp / "runs"),
                           "tracking.experiment": "bench"}.items():
            apply(cfg, key, value)
        options = StudyOptions(str(space), cfg, study_name="bench", storage=str(tmp / "optuna.journal"),
                               progress=False)
        start = time.perf_counter()
        job, study, tracker = runner.prepare_study(options)
        prepare_s = time.perf_counter() - start
        start = time.perf_counter()
        ran = runner.worker_loop(job, 0, tracker)
        loop_s = time.perf_counter() - start
        epochs_s = [sum(v for _, v in tracker.metric_history(t.user_attrs["mlflow_run_id"], M.EPOCH_SECONDS))
                    for t in study.get_trials()]

    per_trial = loop_s / ran
    epoch_per_trial = statistics.fmean(epochs_s)
    trial_total = statistics.fmean(spent["trial (train + suggest)"])
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"optuna {optuna.__version__}, {args.threads} threads")
    print(f"once per process: imports {imports_s:.2f} s; study set-up (checks, store, parent run, queue) "
          f"{prepare_s:.2f} s")
    print(f"{ran} trials of {args.epochs} epoch(s): {per_trial:.2f} s per trial in the worker loop")
    print(f"  epochs (train + evaluation)           {epoch_per_trial:8.3f} s")
    print(f"  train() outside its epochs            {trial_total - epoch_per_trial:8.3f} s")
    for key in ("claim (ask, under the lock)", "claim (owner attributes)", "tell (outcome + attributes)",
                "study run (table, heat-map, tags)"):
        print(f"  {key:38s}{statistics.fmean(spent[key]):8.3f} s")
    accounted = trial_total + sum(statistics.fmean(spent[k]) for k in spent if k != "trial (train + suggest)")
    print(f"  rest of the loop                      {per_trial - accounted:8.3f} s")
    print(f"overhead outside epochs: {per_trial - epoch_per_trial:.2f} s per trial")
    return 0


if __name__ == "__main__":
    sys.exit(main())
