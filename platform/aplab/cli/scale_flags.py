"""The flags ``aplab pipeline run`` and ``aplab study`` share: --workers, --gpus, --runs-per-gpu, and the executor
(local, or a Slurm job array with its --slurm-* resources)."""

from __future__ import annotations

import argparse

from ..scale.gpus import GPUS_HELP


def add_worker_arguments(parser: argparse.ArgumentParser, workers_help: str) -> None:
    """Add --workers (default: GPUs x K on a GPU machine, else 1), --gpus and --runs-per-gpu."""
    parser.add_argument("--workers", type=int, default=None,
                        help=f"{workers_help} (default: GPUs x --runs-per-gpu on a GPU machine, else 1)")
    parser.add_argument("--gpus", default="auto", help=GPUS_HELP)
    parser.add_argument("--runs-per-gpu", type=int, default=1, metavar="K",
                        help="worker processes per GPU (default 1; small models such as cnn8 use a GPU better "
                        "2 or 4 at a time)")


def add_executor_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Add --executor (local or slurm), --wait and the --slurm-* resources of one task (``what``: a run, a worker)."""
    from ..scale.slurm import DEFAULT_TIME

    parser.add_argument("--executor", choices=("local", "slurm"), default="local",
                        help=f"local: train here (default); slurm: submit one Slurm job array, one task per {what} "
                        "(needs aplab[slurm]), print the job id and the log folder, and return")
    parser.add_argument("--wait", action="store_true",
                        help="with --executor slurm: follow the job array until it ends, then print the summary")
    slurm = parser.add_argument_group("Slurm (with --executor slurm)")
    slurm.add_argument("--slurm-partition", help="partition of the tasks (default: the cluster's default)")
    slurm.add_argument("--slurm-time", default=DEFAULT_TIME,
                       help=f"time limit of one task, e.g. 90 (minutes) or 1-12:00:00 (default {DEFAULT_TIME}); a "
                       "task at its limit or preempted is requeued and resumes from its last checkpoint")
    slurm.add_argument("--slurm-gpus-per-run", type=int, default=1, metavar="N",
                       help=f"GPUs of one {what} (default 1; 0 on a CPU-only cluster)")
    slurm.add_argument("--slurm-cpus-per-run", type=int, metavar="N", help=f"CPUs of one {what}")
    slurm.add_argument("--slurm-mem", metavar="SIZE", help=f"memory of one {what}, e.g. 16G")
    slurm.add_argument("--slurm-max-parallel", type=int, metavar="N",
                       help="tasks of the array running at once at most (the array's throttle)")
    slurm.add_argument("--slurm-account", help="Slurm account to charge")
    slurm.add_argument("--slurm-qos", help="Slurm quality of service")
    slurm.add_argument("--slurm-opt", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. --slurm-opt constraint=a100 (repeatable)")
