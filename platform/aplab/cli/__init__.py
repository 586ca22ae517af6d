"""The ``aplab`` command (``command.main``): a module per command, shared flags in ``flags``; argparse lives only here."""

from .command import main

__all__ = ["main"]
