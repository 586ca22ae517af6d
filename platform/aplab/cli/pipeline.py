"""``aplab pipeline run|status|show FILE``: run a pipeline's matrix resumably (here or as a Slurm job array),
say where it stands, or list its cells without running."""

from __future__ import annotations

import argparse

from .flags import Subcommands, add_executor_arguments, add_worker_arguments, worker_request
from ..pipeline.spec import SCALES, Cell, PipelineSpec, expand, load_pipeline, scaled


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
    import time

    from ..executors import PipelineLaunch, executor
    from ..pipeline.shard import parse_shard
    from ..tracking import default_uri
    from ..writable import require_writable

    started = time.perf_counter()
    shard = parse_shard(args.shard) if args.shard else None
    uri = default_uri(args.tracking_uri)
    request = worker_request(args)  # bad flags answer before the file is read or torch counts the GPUs
    runner = executor(args.executor)
    runner.check(request)
    spec, cells = pipeline_cells(args, uri)
    for workdir in sorted({str(c.config.tracking.workdir) for c in cells}):
        require_writable(workdir, "tracking.workdir")  # not a FAILED cell each, "re-run to retry", that never could
    status = f"aplab pipeline status {args.file}{_scale_flag(args)} --tracking-uri {uri}"
    result = runner.run_pipeline(PipelineLaunch(spec, cells, shard, uri, status, started), request)
    return 0 if result is None else _report(args, uri, result)


def _scale_flag(args: argparse.Namespace) -> str:
    return f" --scale {args.scale}" if args.scale != "full" else ""


def _report(args: argparse.Namespace, uri: str, result) -> int:
    """The summary of a run (or a followed array), its unfinished cells, and where the runs are."""
    print(result.summary_line())
    for outcome in result.failed:
        print(f"  {outcome.status} {outcome.cell.label} (config {outcome.cell.digest}): {outcome.error}")
    if result.failed:
        print(f"re-run the same command to retry the {len(result.failed)} unfinished run(s)")
    print(f"runs: {uri}, experiment {result.experiment}")
    print(f"tables and figures: aplab report {args.file}{_scale_flag(args)} --tracking-uri {uri}")
    return 1 if result.failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    """How many cells the tracking store has finished, running, failed and not started."""
    from ..tracking import MemoryTracker, default_uri, make_tracker, store_exists
    from ..pipeline.progress import cell_states, count_states
    from ..status import CellState

    uri = default_uri(args.tracking_uri)
    spec, cells = pipeline_cells(args, uri)
    tracker = make_tracker(uri) if store_exists(uri) else MemoryTracker()  # no store yet: nothing tracked, none made
    tracker.check()
    states = cell_states(tracker, cells)
    counts = count_states(states)
    print(f"pipeline {spec.name}: {len(cells)} cells: "
          + ", ".join(f"{counts[name]} {name.lower()}" for name in CellState)
          + f" (experiment {cells[0].config.tracking.experiment}, {uri})")
    if args.verbose:
        for state in states:
            run = f" run {state.run_id}" if state.run_id else ""
            print(f"  {state.state:<8} {state.cell.digest}  {state.cell.label}{run}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..config import loss_kwargs

    spec, cells = pipeline_cells(args)
    print(f"pipeline {spec.name}: {len(cells)} runs in experiment {cells[0].config.tracking.experiment}"
          + (f" ({spec.description})" if spec.description else ""))
    for cell in cells:
        c = cell.config
        params = " ".join(f"{k}={v:g}" for k, v in loss_kwargs(c).items())
        print(f"  {cell.digest}  {cell.label:<40} {c.model.name} {c.optim.epochs} epochs lr {c.optim.lr:g} {params}")
    return 0


def register(subparsers: Subcommands) -> None:
    """Add ``aplab pipeline run``, ``aplab pipeline status`` and ``aplab pipeline show``."""
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
    add_executor_arguments(run, "run")
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser("status", help="how many cells are finished, running, failed and pending, "
                                 "from the tracking store (whatever trained them)")
    status.add_argument("file")
    add_pipeline_arguments(status)
    status.add_argument("--verbose", "-v", action="store_true", help="one line per cell")
    status.set_defaults(handler=cmd_status)

    show = commands.add_parser("show", help="list the cells (resolved configs) without running anything")
    show.add_argument("file")
    add_pipeline_arguments(show)
    show.set_defaults(handler=cmd_show)
