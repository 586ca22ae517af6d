"""aplab: deep learning with noisy labels (train, quickstart, study, pipeline, report, sync, ui, losses, audit, noise).

Every user mistake ends with one line ``aplab: error: ...`` and exit status 2, before anything runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import AplabError, RunFailed
from ..log import install_log_handler
from .flags import OneLineParser

#: The commands in the order ``aplab --help`` lists them; each is the module ``aplab.cli.<name>`` with ``register``.
COMMANDS = ("train", "quickstart", "losses", "ui", "sync", "study", "pipeline", "report", "audit", "noise")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="aplab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    install_log_handler()
    from ..tracking import use_short_http_retries
    from ..workers.slurm import use_slurm

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
    except BrokenPipeError:  # `aplab ... | head` closed the pipe: no traceback (the recipe of Python's signal docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:  # a place the command had to write or read (no space, read-only, ...): one line
        if err.filename is None:
            raise
        print(f"aplab: error: {err.filename}: {err.strerror or err} (a file or folder this command reads or "
              "writes; choose another place or free it, then run the same command again)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
