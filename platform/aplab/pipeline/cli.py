"""``aplab pipeline run|show FILE``: run a pipeline's matrix resumably, or list its cells without running."""

from __future__ import annotations

import argparse

from ..scale.cli import add_worker_arguments
from .spec import SCALES, Cell, PipelineSpec, expand, load_pipeline, scaled


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, --scale and --set: the flags that decide a pipeline's cells (shared with ``aplab report``)."""
    parser.add_argument("--scale", default="full", help="full (as written) or smoke (digits, first seed, "
                        f"3 epochs, experiment <name>-smoke); one of {', '.join(SCALES.names())}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field in every cell, e.g. --set optim.epochs=10 (repeatable)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--experiment", help="MLflow experiment (default: the file's `experiment`)")


def pipeline_cells(args: argparse.Namespace, uri: str | None = None) -> tuple[PipelineSpec, list[Cell]]:
    """The pipeline of ``args.file`` shrunk by --scale/--set, and all its cells resolved (nothing runs)."""
    spec = scaled(load_pipeline(args.file), args.scale, args.set)
    cells = expand(spec, experiment=args.experiment, tracking_uri=uri, workdir=getattr(args, "workdir", None))
    return spec, cells


def cmd_run(args: argparse.Namespace) -> int:
    from ..scale.gpus import gpu_plan, parse_gpus
    from ..scale.shard import parse_shard, shard_cells
    from ..tracking import default_uri, make_tracker
    from .runner import run_pipeline

    shard = parse_shard(args.shard) if args.shard else None
    gpus = parse_gpus(args.gpus)
    uri = default_uri(args.tracking_uri)
    spec, cells = pipeline_cells(args, uri)  # a bad file or --set answers before torch counts the GPUs
    plan = gpu_plan(gpus, args.runs_per_gpu, args.workers)  # bad GPUs: exit 2 before anything runs
    if shard is not None:
        mine = shard_cells(cells, shard)
        print(f"pipeline {spec.name}: shard {shard} trains {len(mine)} of the {len(cells)} cells")
        if not mine:
            return 0
        cells = mine
    tracker = make_tracker(uri)
    result = run_pipeline(cells, spec.name, tracker=tracker, workers=plan.workers, progress=not args.no_progress,
                          description=spec.description, gpus=plan.gpus)
    print(result.summary_line())
    for outcome in result.failed:
        print(f"  {outcome.status} {outcome.cell.label} (config {outcome.cell.digest}): {outcome.error}")
    if result.failed:
        print(f"re-run the same command to retry the {len(result.failed)} unfinished run(s)")
    scale = f" --scale {args.scale}" if args.scale != "full" else ""
    print(f"runs: {uri}, experiment {result.experiment}")
    print(f"tables and figures: aplab report {args.file}{scale} --tracking-uri {uri}")
    return 1 if result.failed else 0


def cmd_show(args: argparse.Namespace) -> int:
    spec, cells = pipeline_cells(args)
    print(f"pipeline {spec.name}: {len(cells)} runs in experiment {cells[0].config.tracking.experiment}"
          + (f" ({spec.description})" if spec.description else ""))
    for cell in cells:
        c = cell.config
        params = " ".join(f"{k}={getattr(c.loss, k):g}" for k in ("alpha", "beta", "gamma", "q")
                          if getattr(c.loss, k) is not None)
        print(f"  {cell.digest}  {cell.label:<40} {c.model.name} {c.optim.epochs} epochs lr {c.optim.lr:g} {params}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``aplab pipeline run`` and ``aplab pipeline show``."""
    parser = subparsers.add_parser("pipeline", help="run a declarative matrix of runs (pipelines/*.yaml)")
    commands = parser.add_subparsers(dest="pipeline_command", required=True)

    run = commands.add_parser("run", help="run every cell not yet finished in the tracking store")
    run.add_argument("file", help="pipeline YAML file, e.g. pipelines/paper_table2_cifar10.yaml")
    add_pipeline_arguments(run)
    add_worker_arguments(run, "cells trained at once, each in its own process")
    run.add_argument("--shard", metavar="I/N", help="train only shard I of N (1 <= I <= N) of the cells: n hosts "
                     "split one pipeline against a shared tracking store, each with its own I")
    run.add_argument("--workdir", default="aplab_runs", help="folder of run checkpoints and state")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)

    show = commands.add_parser("show", help="list the cells (resolved configs) without running anything")
    show.add_argument("file")
    add_pipeline_arguments(show)
    show.set_defaults(handler=cmd_show)
