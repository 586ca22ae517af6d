"""Argument parsing shared by every command that builds run configs (train, study, pipeline).

Kept apart from ``aplab.cli`` so that sub-command modules import it without importing the top-level CLI.
"""

from __future__ import annotations

import argparse
import sys

from ..config import RunConfig, apply, from_dict, load_yaml, parse_override

#: --flag -> dotted config field, for the fields people change most.
TRAIN_FLAGS: dict[str, tuple[str, type | None, str]] = {
    "dataset": ("data.name", str, "dataset (digits, mnist, cifar10, cifar100, webvision_mini)"),
    "model": ("model.name", str, "model: cnn4, cnn8, resnet18, resnet34, resnet50, or any other model of "
                                 "timm's resnet module (resnet*, resnext*, seresnet*, wide_resnet*, ...)"),
    "loss": ("loss.name", str, "loss, e.g. ce, gce, sce, nce+rce, anl-ce (`aplab losses` lists them)"),
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
}


class OneLineParser(argparse.ArgumentParser):
    """argparse with the platform's error format: one line, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"aplab: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by every command that builds run configs."""
    for flag, (_, kind, text) in TRAIN_FLAGS.items():
        parser.add_argument(f"--{flag}", type=kind, help=text)
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
    for flag, (path, _, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag.replace("-", "_"), None)
        if value is not None:
            apply(cfg, path, value)
    for flag, path in (("clean_val", "data.clean_val"), ("compile", "runtime.compile"), ("offline", "tracking.offline")):
        if getattr(args, flag, False):
            apply(cfg, path, True)
    for item in args.set:
        apply(cfg, *parse_override(item))
    return cfg
