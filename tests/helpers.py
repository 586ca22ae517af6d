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


def assert_loss_matches(loss, reference, classes: int, tol: dict, reduce: str = "sum") -> None:
    """``loss`` (built with reduction "none") equals ``reference(z, y)`` on every ``logit_batches`` batch, in
    value and in the gradient of the batch's ``reduce`` ("sum"; "mean" where a batch-level term couples
    the samples)."""
    import torch

    for z, y in logit_batches(classes):
        mine, theirs = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
        got = loss(mine, y)
        want = reference(theirs, y).expand_as(got)
        torch.testing.assert_close(got, want, **tol)
        (g_mine,) = torch.autograd.grad(getattr(got, reduce)(), mine)
        (g_theirs,) = torch.autograd.grad(getattr(want, reduce)(), theirs)
        torch.testing.assert_close(g_mine, g_theirs, **tol)
