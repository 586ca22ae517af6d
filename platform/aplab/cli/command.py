"""aplab: deep learning with noisy labels (train, quickstart, study, pipeline, report, sync, ui, losses, audit, noise).

Every user mistake ends with one line ``aplab: error: ...`` and exit status 2, before anything runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .flags import OneLineParser, add_config_arguments, config_from_args
from ..config import apply
from ..errors import AplabError, ConfigError, RunFailed
from ..keys import M
from ..log import install_log_handler

#: The end-of-run numbers printed (all are logged): chosen without looking at the test set.
SUMMARY_SHOWN = (M.TEST_ACC_LAST, M.TEST_ACC_BEST_VAL, M.BEST_VAL_EPOCH)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)  # a bad flag or file fails here, before torch is imported
    if args.nproc_per_node is not None:
        apply(cfg, "runtime.nproc_per_node", args.nproc_per_node)
    if cfg.runtime.nproc_per_node < 1:  # before torch is imported (train's own check would come after)
        raise ConfigError("runtime.nproc_per_node", cfg.runtime.nproc_per_node, "an integer >= 1")
    from ..train import train
    from ..status import RunStatus

    result = train(cfg, progress=not args.no_progress)
    if result is None:
        return 0  # a rank other than 0 of a run torchrun started: rank 0 reports
    where = f"run {result.run_id}" if result.run_id else f"offline run in {result.run_dir}"
    shown = [k for k in SUMMARY_SHOWN if k in result.summary]
    summary = "  ".join(f"{k} {100 * result.summary[k]:.2f}%" if "acc" in k else f"{k} {result.summary[k]:g}"
                        for k in shown)
    status = "already finished (nothing to do)" if result.status == RunStatus.SKIPPED else result.status.lower()
    print(f"{status}: {where}  {summary}")
    print(f"run folder: {result.run_dir}")
    if not result.synced and not args.offline:
        print(f"the tracking server has not received everything yet: run `aplab sync {result.run_dir}`")
    return result.status.exit_code


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ..pipeline import run_quickstart

    return run_quickstart(args)


def cmd_losses(args: argparse.Namespace) -> int:
    from ..losses import loss_table

    print(loss_table(), end="")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from ..tracking import default_uri
    from ..tracking.mlflow_tracker import open_ui

    return open_ui(default_uri(args.tracking_uri), args.port)


def cmd_sync(args: argparse.Namespace) -> int:
    """Push run folders; exit 0 only when the store is reachable and holds everything they hold."""
    from ..tracking import make_tracker
    from ..train import sync
    from ..train.sync import RunOfAnotherStore

    tracker = make_tracker(args.tracking_uri)
    tracker.check()  # an unreachable or malformed URI is an error (exit 2) even with nothing to push
    folders = [Path(p) for p in args.run_dirs] or sorted(p.parent for p in Path(args.workdir).rglob("state.json"))
    if not folders:
        print(f"nothing to push: no run folders under {args.workdir}; tracker {tracker.uri} is reachable")
    skipped = behind = 0
    for folder in folders:
        try:
            result = sync(folder, tracker)
        except RunOfAnotherStore as err:
            skipped += 1
            print(f"{folder}: skipped, {err}")
            continue
        behind += not result.synced
        print(f"{folder}: {result.status.lower()} run {result.run_id}, tracker up to date: {result.synced}")
    if skipped and args.run_dirs:
        return 2
    if behind:
        print(f"{behind} run(s) not fully delivered (see the warnings above): run `aplab sync` again once the "
              "store is reachable", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="aplab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one run (the paper's settings by default)",
                                description="Train one run. With no flags: digits, cnn4, ce, no noise; every unset "
                                            "field takes the dataset's paper setting (README, presets.py).")
    add_config_arguments(train)
    train.add_argument("--nproc-per-node", type=int, metavar="N",
                       help="train this one run on N processes (GPUs) with DistributedDataParallel; "
                            "several nodes: torchrun (docs/distributed.md)")
    train.set_defaults(handler=cmd_train)

    quick = commands.add_parser("quickstart", help="CE vs NCE+RCE under heavy noise on the embedded digits")
    quick.add_argument("--tracking-uri")
    quick.add_argument("--experiment", default="aplab-quickstart")
    quick.add_argument("--workdir", default="aplab_runs")
    quick.add_argument("--out", default="aplab_out/quickstart", help="folder of the table and plots")
    quick.add_argument("--workers", type=int, default=1)
    quick.set_defaults(handler=cmd_quickstart)

    table = commands.add_parser("losses", help="print the table of losses (from their metadata)")
    table.set_defaults(handler=cmd_losses)

    ui = commands.add_parser("ui", help="open the MLflow UI on the tracking store")
    ui.add_argument("--tracking-uri")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=cmd_ui)

    sync = commands.add_parser("sync", help="push offline runs (or runs finished during an outage) to the tracker")
    sync.add_argument("run_dirs", nargs="*", help="run folders (default: every run under --workdir)")
    sync.add_argument("--tracking-uri", help="the store to push to (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    sync.add_argument("--workdir", default="aplab_runs", help="where to look for run folders (default aplab_runs)")
    sync.set_defaults(handler=cmd_sync)

    from .audit import register as register_audit
    from .noise import register as register_noise
    from .pipeline import register as register_pipeline
    from .report import register as register_report
    from .study import register as register_study

    for register in (register_study, register_pipeline, register_report, register_audit, register_noise):
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    install_log_handler()
    from ..workers.slurm import use_slurm
    from ..tracking import use_short_http_retries

    use_slurm()  # a run started in a Slurm task records it and checks claims with squeue

    use_short_http_retries()  # MLflow's HTTP retries: seconds per call during an outage, not minutes
    try:
        return args.handler(args)
    except AplabError as err:
        print("aplab: error: " + " ".join(str(err).split()), file=sys.stderr)  # always one line
        if isinstance(err, RunFailed):  # the run is marked FAILED; the message says why and what to try
            from ..status import RunStatus  # a run has run: torch is loaded already

            return RunStatus.FAILED.exit_code
        return 2
    except KeyboardInterrupt:
        print("aplab: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
