"""Shared fixtures: a quiet, small digits config and a CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
# A run's threads ("auto") count the cores free at its start, so on a busy machine two runs a test compares bit
# for bit could compute with different thread counts (CI saw 1 beside 2). Pinned for the tests and their child
# processes: every run takes all of its cores, or its worker's share; runtime.threads still wins.
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.stack helpers


@pytest.fixture
def small_run(tmp_path):
    """A digits run config of a few epochs writing into tmp_path, with no system-metrics thread."""
    from aplab.config import RunConfig, apply

    def make(**overrides) -> RunConfig:
        cfg = RunConfig()
        values = {"data.name": "digits", "loss.name": "nce+rce", "noise.spec": "symmetric:0.4", "optim.epochs": 2,
                  "tracking.workdir": str(tmp_path / "runs"), "tracking.system_metrics": False, **overrides}
        for key, value in values.items():
            apply(cfg, key, value)
        return cfg

    return make
