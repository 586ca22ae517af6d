"""``aplab train``: one run, the paper's settings for any field left unset; prints its end-of-run summary."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..keys import M
from .flags import Subcommands, add_config_arguments, config_from_args

#: The end-of-run numbers printed (all are logged): chosen without looking at the test set.
SUMMARY_SHOWN = (M.TEST_ACC_LAST, M.TEST_ACC_BEST_VAL, M.BEST_VAL_EPOCH)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)  # a bad flag or file fails here, before torch is imported (--nproc-per-node too)
    if cfg.runtime.nproc_per_node < 1:  # before torch is imported (train's own check would come after)
        raise ConfigError("runtime.nproc_per_node", cfg.runtime.nproc_per_node, "an integer >= 1")
    from ..status import RunStatus
    from ..train import train

    result = train(cfg, progress=not args.no_progress)
    if result is None:
        return 0  # a rank other than 0 of a run torchrun started: rank 0 reports
    where = f"run {result.run_id}" if result.run_id else f"offline run in {result.run_dir}"
    shown = [k for k in SUMMARY_SHOWN if k in result.summary]
    summary = "  ".join(f"{k} {100 * result.summary[k]:.2f}%" if "acc" in k else f"{k} {result.summary[k]:g}"
                        for k in shown)
    status = "already finished (nothing to do)" if result.status == RunStatus.SKIPPED else result.status.lower()
    print(f"{status}: {where}  {summary}")
    print(f"run folder: {result.run_dir}")
    if not result.synced and not args.offline:
        print(f"the tracking server has not received everything yet: run `aplab sync {result.run_dir}`")
    return result.status.exit_code


def register(commands: Subcommands) -> None:
    """Add ``aplab train``."""
    parser = commands.add_parser("train", help="train one run (the paper's settings by default)",
                                 description="Train one run. With no flags: digits, cnn4, ce, no noise; every unset "
                                             "field takes the dataset's paper setting (README, docs/losses.md).")
    add_config_arguments(parser, list_registries=True)
    parser.add_argument("--nproc-per-node", type=int, metavar="N",
                        help="train this one run on N processes (GPUs) with DistributedDataParallel; "
                             "several nodes: torchrun (docs/distributed.md)")
    parser.set_defaults(handler=cmd_train)
