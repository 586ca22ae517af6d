"""Moved to ``aplab.pipeline.report_cli`` (``aplab report FILE`` needs the pipeline's cells, and the
pipeline package uses ``aplab.report``, never the other way round). Kept only until ``aplab/cli.py``
imports ``register`` from there; then delete this file."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``aplab report`` (see ``aplab.pipeline.report_cli.register``)."""
    from ..pipeline.report_cli import register as register_report

    register_report(subparsers)
