"""``aplab sync``: push offline runs, or runs finished during an outage, to the tracking store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .flags import Subcommands


def cmd_sync(args: argparse.Namespace) -> int:
    """Push run folders; exit 0 only when the store is reachable and holds everything they hold."""
    from ..tracking import default_uri, make_tracker, store_exists
    from ..train import sync
    from ..train.sync import RunOfAnotherStore

    uri = default_uri(args.tracking_uri)
    folders = [Path(p) for p in args.run_dirs] or sorted(p.parent for p in Path(args.workdir).rglob("state.json"))
    if not folders and not store_exists(uri):  # nothing to push, and no empty store made for it
        print(f"nothing to push: no run folders under {args.workdir} (and no store at {uri} yet)")
        return 0
    tracker = make_tracker(uri)
    tracker.check()  # an unreachable or malformed URI is an error (exit 2) even with nothing to push
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


def register(commands: Subcommands) -> None:
    """Add ``aplab sync``."""
    parser = commands.add_parser("sync", help="push offline runs (or runs finished during an outage) to the tracker")
    parser.add_argument("run_dirs", nargs="*", help="run folders (default: every run under --workdir)")
    parser.add_argument("--tracking-uri",
                        help="the store to push to (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--workdir", default="aplab_runs", help="where to look for run folders (default aplab_runs)")
    parser.set_defaults(handler=cmd_sync)
