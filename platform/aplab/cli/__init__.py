"""The ``aplab`` command: one module per command, shared flags in ``flags``; argparse lives only here."""

from .main import main

__all__ = ["main"]
