"""``aplab losses``: the table of every buildable loss, generated from the losses' metadata."""

from __future__ import annotations

import argparse

from .flags import Subcommands


def cmd_losses(args: argparse.Namespace) -> int:
    from ..losses import loss_table

    print(loss_table(), end="")
    return 0


def register(commands: Subcommands) -> None:
    """Add ``aplab losses``."""
    parser = commands.add_parser("losses", help="print the table of losses (from their metadata)")
    parser.set_defaults(handler=cmd_losses)
