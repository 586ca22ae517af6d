"""Helpers shared by the test modules (imported as ``tests.helpers``; tests/conftest.py puts the repository root
on sys.path): the ``aplab`` CLI as a child process, and a free TCP port."""

from __future__ import annotations

import os
import socket
import sys


def aplab_command(*args: str) -> list[str]:
    """``aplab ARGS`` as a child process's argv: this interpreter (the venv's) running the CLI module, so the
    child imports the same aplab as the tests (PYTHONPATH, inherited)."""
    return [sys.executable, "-m", "aplab.cli", *args]


def aplab_env(**extra: str) -> dict[str, str]:
    """The environment of an ``aplab`` child process: this one's, unbuffered (its lines arrive as written), no
    MLflow system-metrics thread, and ``extra`` on top."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false", **extra}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick for a bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def logit_batches(classes: int):
    """The float64 logits the loss tests compare on: random, extreme (+-40) and confident (+-30) rows, with
    labels, including confident rows whose label is the wrong class."""
    import torch

    g = torch.Generator().manual_seed(0)
    random = torch.randn(64, classes, generator=g, dtype=torch.float64) * 3
    extreme = (torch.randint(-1, 2, (64, classes), generator=g).double() * 40
               + torch.randn(64, classes, generator=g).double())
    labels = torch.randint(0, classes, (64,), generator=g)
    confident = torch.full((8, classes), -30.0, dtype=torch.float64)
    confident[torch.arange(8), torch.arange(8)] = 30.0
    return [(random, labels), (extreme, labels), (confident, torch.arange(8)),
            (confident, (torch.arange(8) + 1) % classes)]
