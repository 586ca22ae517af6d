"""``aplab ui``: MLflow's UI on the tracking store, opened on an experiment's runs; SIGTERM stops its server."""

from __future__ import annotations

import argparse

from .flags import Subcommands


def cmd_ui(args: argparse.Namespace) -> int:
    from ..tracking import default_uri
    from ..tracking.ui import open_ui

    return open_ui(default_uri(args.tracking_uri), args.port, experiment=args.experiment, log=args.log)


def register(commands: Subcommands) -> None:
    """Add ``aplab ui``."""
    parser = commands.add_parser("ui", help="open the MLflow UI on the tracking store",
                                 description="Start MLflow's UI on the tracking store and print the address of an "
                                             "experiment's runs; Ctrl-C or SIGTERM stops the server.")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or "
                                               "sqlite:///mlflow.db); a server's URI prints where its own UI is")
    parser.add_argument("--port", type=int, default=5000, help="port of the UI on 127.0.0.1 (default 5000)")
    parser.add_argument("--experiment", metavar="NAME",
                        help="the experiment whose runs to open (default: the one with the latest runs)")
    parser.add_argument("--log", metavar="FILE",
                        help="file of the MLflow server's own output (default mlflow-ui.log beside the store)")
    parser.set_defaults(handler=cmd_ui)
