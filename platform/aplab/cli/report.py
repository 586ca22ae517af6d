"""``aplab report FILE | --experiment NAME``: tables beside the paper's numbers, and figures, from the store.

It lives with the pipelines because ``aplab report FILE`` reports exactly a pipeline's cells: the
pipeline package uses ``aplab.report``, never the other way round.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..keys import T, report_experiment
from .flags import Subcommands
from .pipeline import add_pipeline_arguments, pipeline_cells


#: Printed under a smoke-scale report: its numbers check the machinery, they are not results.
SMOKE_NOTE = ("note: --scale smoke shrinks the pipeline (digits, one seed, a few epochs): these numbers check that "
              "it runs end to end; they are not findings and say nothing about the losses")


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import FIGURE_KINDS, build_report
    from ..tracking import default_uri, make_tracker, store_exists

    if not args.file and not args.experiment:
        raise ConfigError("aplab report", "no FILE and no --experiment", "a pipeline FILE or --experiment NAME")
    hashes = name = paper_table = order = None
    experiment = args.experiment
    if args.file:
        spec, cells = pipeline_cells(args)
        experiment = cells[0].config.tracking.experiment
        hashes, name, paper_table, order = {c.digest for c in cells}, spec.name, spec.paper_table, spec.loss_order
    uri = default_uri(args.tracking_uri)
    if not store_exists(uri):  # reading must not leave an empty store behind
        raise ConfigError("--tracking-uri", uri, "an existing store: that SQLite file does not exist (report reads "
                                                 "the store training wrote to: its --tracking-uri or MLFLOW_TRACKING_URI)")
    tracker = make_tracker(uri)
    tracker.check()  # an unreachable store is one line and exit 2, not a traceback
    out = Path(args.out or Path("aplab_out") / "report" / experiment)
    kinds = () if args.no_figures else FIGURE_KINDS
    report = build_report(tracker, experiment, out, metric=args.metric, hashes=hashes, name=name,
                          paper_table=paper_table, order=order, figure_kinds=kinds, log=not args.no_log)
    if report.plain:
        from ..report.render import plain_caption

        print(plain_caption(args.metric, report.summary))
        print(report.plain)
    if getattr(args, "scale", "full") == "smoke":
        print(SMOKE_NOTE)
    print(f"{len(report.runs)} finished runs of experiment {experiment} in {tracker.uri}")
    print(f"written to {out}: " + ", ".join(p.name for p in report.files))
    if report.run_id:
        print(f"logged as report run {report.run_id} in experiment {report_experiment(experiment)} (tag {T.REPORT}=1)")
    return 0


def register(subparsers: Subcommands) -> None:
    """Add ``aplab report``."""
    parser = subparsers.add_parser("report", help="tables (CSV, Markdown, LaTeX) beside the paper, and figures")
    parser.add_argument("file", nargs="?", help="pipeline YAML file: report exactly its cells (same --scale/--set)")
    add_pipeline_arguments(parser)
    parser.add_argument("--metric", default="last",
                        help="last: test accuracy at the last epoch (the paper's protocol, default); "
                             "best: the best epoch's test accuracy (later papers' protocol); "
                             "best_val: test accuracy at the epoch of best validation accuracy")
    parser.add_argument("--out", help="output folder (default aplab_out/report/<experiment>)")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the report as a run (in the experiment <experiment>-reports)")
    parser.set_defaults(handler=cmd_report)
