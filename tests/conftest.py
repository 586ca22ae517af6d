"""Shared fixtures: a quiet, small digits config and a CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
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
