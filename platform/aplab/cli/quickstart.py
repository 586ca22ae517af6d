"""``aplab quickstart``: CE against GCE, SCE and NCE+RCE under 60% symmetric noise on the embedded digits."""

from __future__ import annotations

import argparse

from .flags import Subcommands


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ..pipeline.quickstart import QuickstartOptions, run_quickstart

    return run_quickstart(QuickstartOptions(tracking_uri=args.tracking_uri, experiment=args.experiment,
                                            workdir=args.workdir, out=args.out, workers=args.workers))


def register(commands: Subcommands) -> None:
    """Add ``aplab quickstart``."""
    parser = commands.add_parser("quickstart", help="CE vs NCE+RCE under heavy noise on the embedded digits",
                                 description="Train CE, GCE, SCE and NCE+RCE under 60% symmetric noise on the "
                                             "embedded digits (3 seeds, nothing downloaded), resumably, then print "
                                             "the table and write the plots.")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or "
                                               "sqlite:///mlflow.db)")
    parser.add_argument("--experiment", default="aplab-quickstart", help="MLflow experiment (default aplab-quickstart)")
    parser.add_argument("--workdir", default="aplab_runs", help="folder of run checkpoints and state "
                                                                "(default aplab_runs)")
    parser.add_argument("--out", default="aplab_out/quickstart",
                        help="folder of the table and plots (default aplab_out/quickstart)")
    parser.add_argument("--workers", type=int, default=None,
                        help="runs trained at once, one process each (default: on a CPU one per core this "
                             "process may use, the fastest there; with a GPU 1, training the runs as stacks)")
    parser.set_defaults(handler=cmd_quickstart)
