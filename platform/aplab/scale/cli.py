"""The worker flags ``aplab pipeline run`` and ``aplab study`` share: --workers, --gpus, --runs-per-gpu."""

from __future__ import annotations

import argparse

from .gpus import GPUS_HELP


def add_worker_arguments(parser: argparse.ArgumentParser, workers_help: str) -> None:
    """Add --workers (default: GPUs x K on a GPU machine, else 1), --gpus and --runs-per-gpu."""
    parser.add_argument("--workers", type=int, default=None,
                        help=f"{workers_help} (default: GPUs x --runs-per-gpu on a GPU machine, else 1)")
    parser.add_argument("--gpus", default="auto", help=GPUS_HELP)
    parser.add_argument("--runs-per-gpu", type=int, default=1, metavar="K",
                        help="worker processes per GPU (default 1; small models such as cnn8 use a GPU better "
                        "2 or 4 at a time)")
