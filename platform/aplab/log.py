"""aplab's one log handler: "[aplab] message" on stderr, installed by the entry points (the CLI, a rank).

A leaf module, so any layer's entry point can install it without importing the command line.
"""

from __future__ import annotations

import logging
import sys


class StderrHandler(logging.Handler):
    """Writes each record to the current sys.stderr, not the one of install time (tests and notebooks swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging's own contract: a failing handler reports and goes on
            self.handleError(record)


def install_log_handler() -> None:
    """The one handler of aplab's diagnostics: "[aplab] message" on stderr, INFO and above (once per process)."""
    logger = logging.getLogger("aplab")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("[aplab] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
