"""``aplab ui``: MLflow's UI on the tracking store."""

from __future__ import annotations

import argparse

from .flags import Subcommands


def cmd_ui(args: argparse.Namespace) -> int:
    from ..tracking import default_uri
    from ..tracking.mlflow_tracker import open_ui

    return open_ui(default_uri(args.tracking_uri), args.port)


def register(commands: Subcommands) -> None:
    """Add ``aplab ui``."""
    parser = commands.add_parser("ui", help="open the MLflow UI on the tracking store")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--port", type=int, default=5000)
    parser.set_defaults(handler=cmd_ui)
