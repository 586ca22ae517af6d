"""The flags and parser shared by the commands: run-config flags (train, study, pipeline), workers, executors.

Each command module imports it, never the top-level ``command``; it turns flags into typed options
(``RunConfig``, ``WorkerRequest``, ``SlurmOptions``) so no library function takes an argparse namespace.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..config import RunConfig, apply, from_dict, load_yaml, parse_override
from ..errors import ConfigError
from ..workers.gpus import GPUS_HELP

if TYPE_CHECKING:
    from ..executors import WorkerRequest
    from ..workers.slurm import SlurmOptions

#: --flag -> dotted config field, for the fields people change most. ``{names}`` in a help text is filled from
#: the flag's registry (LISTINGS) when help is shown, so parsing flags never imports torch.
TRAIN_FLAGS: dict[str, tuple[str, type | None, str]] = {
    "dataset": ("data.name", str, "dataset: {names}"),
    "model": ("model.name", str, "model: {names}"),
    "loss": ("loss.name", str, "loss: {names}, or any '<active>+<passive>' pair (`aplab losses` lists them)"),
    "noise": ("noise.spec", str, "label noise, e.g. symmetric:0.4, asymmetric:0.3, human:worst, none (docs/noise.md)"),
    "seed": ("runtime.seed", int, "seed of weights, noise, split and order"),
    "epochs": ("optim.epochs", int, "epochs (default: the paper's for the dataset)"),
    "alpha": ("loss.alpha", float, "weight of the first (active) term"),
    "beta": ("loss.beta", float, "weight of the second (passive) term"),
    "fidelity": ("loss.fidelity", str, "code (authors' code constants, default) or paper (paper text)"),
    "data-dir": ("data.data_dir", str, "data directory (default $APLAB_DATA or ~/.cache/aplab/data)"),
    "tracking-uri": ("tracking.uri", str, "MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"),
    "experiment": ("tracking.experiment", str, "MLflow experiment name"),
    "workdir": ("tracking.workdir", str, "folder of run checkpoints and state (default aplab_runs)"),
    "precision": ("runtime.precision", str, "auto, fp32 or bf16"),
    "device": ("runtime.device", str, "auto, cpu, cuda or cuda:N"),
    "threads": ("runtime.threads", int, "CPU threads per run (default: the free cores this process may use)"),
}

#: Flags of one command only (``aplab train``), applied like the others: before --set, which wins.
COMMAND_FLAGS: dict[str, str] = {"nproc-per-node": "runtime.nproc_per_node"}


def _datasets() -> str:
    from ..data import available_datasets

    return ", ".join(available_datasets())


def _models() -> str:
    from ..models import OTHER_MODELS, available_models

    return ", ".join(available_models()) + " " + OTHER_MODELS


def _losses() -> str:
    from ..losses import available

    return ", ".join(available())


#: The registries whose names a flag's help lists.
LISTINGS: dict[str, Callable[[], str]] = {"dataset": _datasets, "model": _models, "loss": _losses}


def flag_help(flag: str) -> str:
    """The help text of ``--flag``, with its registry's names where it lists them."""
    text = TRAIN_FLAGS[flag][2]
    return text.format(names=LISTINGS[flag]()) if flag in LISTINGS else text


class Subcommands(Protocol):
    """What a command module's ``register`` needs of ``parser.add_subparsers()``: its ``add_parser``."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class OneLineParser(argparse.ArgumentParser):
    """argparse with the platform's error format (one line, exit status 2); help texts listing a registry are
    filled in only when help is shown."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.listed: list[tuple[argparse.Action, str]] = []  # (action, flag of TRAIN_FLAGS)

    def error(self, message: str):  # type: ignore[override]
        print(f"aplab: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)

    def add_listed_argument(self, *names: str, flag: str, **kwargs: Any) -> argparse.Action:
        """An argument whose help is ``flag_help(flag)``, computed when help is shown."""
        action = self.add_argument(*names, help=TRAIN_FLAGS[flag][2], **kwargs)
        if flag in LISTINGS:
            self.listed.append((action, flag))
        return action

    def format_help(self) -> str:
        for action, flag in self.listed:
            action.help = flag_help(flag).replace("%", "%%")
        return super().format_help()


def add_config_arguments(parser: OneLineParser, list_registries: bool = False) -> None:
    """The flags shared by every command that builds run configs. With ``list_registries`` (``aplab train``) the
    help of --dataset, --model and --loss lists the registries (importing torch to show help); other commands'
    help stays instant and points there."""
    for flag, (_, kind, text) in TRAIN_FLAGS.items():
        if list_registries or flag not in LISTINGS:
            parser.add_listed_argument(f"--{flag}", flag=flag, type=kind)
        else:
            parser.add_argument(f"--{flag}", type=kind, help=text.replace("{names}", "see `aplab train --help`"))
    parser.add_argument("--config", help="YAML file of config sections (data, noise, model, loss, optim, runtime, tracking)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field, e.g. --set optim.lr=0.05 (repeatable)")
    parser.add_argument("--clean-val", action="store_true", help="validate on clean labels (an oracle, for analysis)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--offline", action="store_true", help="log locally only; push later with `aplab sync`")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """--config file, then the flags, then --set overrides, in that order of precedence (last wins)."""
    cfg = from_dict(load_yaml(args.config)) if args.config else RunConfig()
    for flag, path in [*((flag, path) for flag, (path, _, _) in TRAIN_FLAGS.items()), *COMMAND_FLAGS.items()]:
        value = getattr(args, flag.replace("-", "_"), None)
        if value is not None:
            apply(cfg, path, value)
    for flag, path in (("clean_val", "data.clean_val"), ("compile", "runtime.compile"), ("offline", "tracking.offline")):
        if getattr(args, flag, False):
            apply(cfg, path, True)
    for item in args.set:
        apply(cfg, *parse_override(item))
    return cfg


def add_worker_arguments(parser: argparse.ArgumentParser, workers_help: str) -> None:
    """Add --workers (default: GPUs x K on a GPU machine, else 1), --gpus and --runs-per-gpu."""
    parser.add_argument("--workers", type=int, default=None,
                        help=f"{workers_help} (default: GPUs x --runs-per-gpu on a GPU machine, else 1)")
    parser.add_argument("--gpus", default="auto", help=GPUS_HELP)
    parser.add_argument("--runs-per-gpu", type=int, default=1, metavar="K",
                        help="worker processes per GPU (default 1; small models such as cnn8 use a GPU better "
                        "2 or 4 at a time)")
    parser.add_argument("--stack", default="1", metavar="K|auto",
                        help="train up to K compatible runs (cnn4/cnn8, same dataset, epochs, batch size) as one "
                        "fused model on one device, each still its own run; auto: as many as pay and fit "
                        "(default 1: each run alone)")


def add_executor_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Add --executor (local or slurm), --wait and the --slurm-* resources of one task (``what``: a run, a worker)."""
    from ..executors import EXECUTORS
    from ..workers.slurm import DEFAULT_TIME

    parser.add_argument("--executor", choices=EXECUTORS.names(), default="local",
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

def slurm_options(args: argparse.Namespace) -> SlurmOptions:
    """The ``--slurm-*`` flags, checked (one ConfigError line for the first bad one)."""
    from ..workers.slurm import SlurmOptions, parse_opts, parse_time

    for flag, value, least in (("--slurm-gpus-per-run", args.slurm_gpus_per_run, 0),
                               ("--slurm-cpus-per-run", args.slurm_cpus_per_run, 1),
                               ("--slurm-max-parallel", args.slurm_max_parallel, 1)):
        if value is not None and value < least:
            raise ConfigError(flag, value, f"an integer >= {least}")
    if args.slurm_mem is not None and not re.fullmatch(r"\d+[KMGT]?B?", args.slurm_mem.strip(), re.IGNORECASE):
        raise ConfigError("--slurm-mem", args.slurm_mem, "a memory size such as 16G or 8000M")
    return SlurmOptions(partition=args.slurm_partition, time_min=parse_time(args.slurm_time),
                        gpus_per_run=args.slurm_gpus_per_run, cpus_per_run=args.slurm_cpus_per_run,
                        mem=args.slurm_mem.strip() if args.slurm_mem else None, max_parallel=args.slurm_max_parallel,
                        account=args.slurm_account, qos=args.slurm_qos, extra=parse_opts(args.slurm_opt))


def worker_request(args: argparse.Namespace) -> WorkerRequest:
    """What --gpus, --runs-per-gpu, --workers, --wait and the --slurm-* flags ask of an executor (checked)."""
    from ..executors import WorkerRequest
    from ..pipeline.stacks import parse_stack
    from ..workers.gpus import parse_gpus

    return WorkerRequest(gpus=parse_gpus(args.gpus), runs_per_gpu=args.runs_per_gpu, workers=args.workers,
                         wait=args.wait, slurm=slurm_options(args), progress=not args.no_progress,
                         stack=parse_stack(args.stack))
