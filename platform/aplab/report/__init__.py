"""Reports of an experiment, read only from the tracking store: tables beside the paper's numbers and figures.

``build_report(tracker, experiment, out)`` writes CSV/Markdown/LaTeX tables and PNG/PDF figures to
``out`` and logs them to a report run (tagged ``aplab.report=1``) in the experiment
``<experiment>-reports``: report runs stay out of the training runs' view and counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..keys import P_REPORT_CELLS, P_REPORT_METRIC, P_REPORT_RUNS, M, T, report_experiment
from ..status import RunStatus
from ..tracking import Tracker

if TYPE_CHECKING:  # pandas and matplotlib load only when a report is built (train imports run_plots)
    import pandas as pd

__all__ = ["Report", "build_report"]

HISTORY_KEYS = (M.TEST_ACC, M.TRAIN_MEMORISED)
#: Figure kinds a report can draw; ``build_report(figure_kinds=...)`` picks among them.
FIGURE_KINDS = ("curves", "memorisation", "noise", "heatmap")


@dataclass
class Report:
    """What a report wrote and computed."""

    out: Path
    summary: pd.DataFrame
    dynamics: pd.DataFrame
    runs: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    markdown: str = ""
    plain: str = ""
    run_id: str | None = None
    classes: pd.DataFrame | None = None  # per run: its worst class and the classes it never predicts right

    def figures(self) -> list[Path]:
        return [p for p in self.files if p.suffix == ".png"]


def build_report(tracker: Tracker, experiment: str, out: str | Path, metric: str = "last",
                 hashes: set[str] | None = None, name: str | None = None, paper_table: str | None = None,
                 order: Sequence[str] | None = None, figure_kinds: Sequence[str] = FIGURE_KINDS,
                 log: bool = True) -> Report:
    """Tables and figures of the finished runs of ``experiment`` (only config hashes in ``hashes`` if
    given) and the alpha x beta grids of its studies; a ConfigError when there is nothing to report."""
    from . import figures
    from .classes import class_markdown, class_table, zero_class_lines
    from .dynamics import dynamics, dynamics_markdown, load_histories
    from .render import to_latex, to_markdown, to_plain
    from .tables import METRICS, runs_frame, sort_runs, summarise

    METRICS.get(metric, "--metric")
    for kind in figure_kinds:
        if kind not in FIGURE_KINDS:
            raise ConfigError("figure", kind, "one of " + ", ".join(FIGURE_KINDS))
    out = Path(out)
    # report runs have their own experiment; older stores kept them here, and they are never counted
    records = [r for r in tracker.find_runs(experiment) if r.tags.get(T.REPORT) != "1"]
    frame = sort_runs(runs_frame(records, hashes), order)
    grids = figures.study_grids(records) if "heatmap" in figure_kinds and hashes is None else {}
    if frame.empty and not grids:
        what = "of this pipeline " if hashes is not None else ""
        hint = "; `aplab report --experiment NAME` reports every finished run" if hashes is not None else ""
        raise ConfigError("experiment", experiment, f"an experiment with finished runs {what}in {tracker.uri} "
                          f"(found {len(records)} runs, none finished{' with these configs' if hashes else ''}{hint})")
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(frame, metric, paper_table, order)
    histories = load_histories(tracker, frame["run_id"], HISTORY_KEYS) if not frame.empty else {}
    dyn = dynamics(frame, histories, order)
    report = Report(out, summary, dyn, frame)
    if not frame.empty:
        if summary.empty:
            raise ConfigError("--metric", metric, f"a metric the runs have ({METRICS.get(metric).key} is missing)")
        report.markdown = to_markdown(summary, metric)
        report.classes = class_table(frame, records)
        zero = zero_class_lines(report.classes)
        report.plain = to_plain(summary) + ("Classes a run never predicts right (test accuracy 0% at its last "
                                            "epoch; per_class.md):\n" + "\n".join(zero) + "\n" if zero else "")
        stem = out / f"table_{metric}"
        summary.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.4f")
        stem.with_suffix(".md").write_text(report.markdown)
        stem.with_suffix(".tex").write_text(to_latex(summary, metric))
        frame.drop(columns=["variant"]).to_csv(out / "runs.csv", index=False, float_format="%.6f")
        dyn.to_csv(out / "dynamics.csv", index=False, float_format="%.4f")
        (out / "dynamics.md").write_text(dynamics_markdown(dyn))
        report.files += [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
        report.files += [out / "runs.csv", out / "dynamics.csv", out / "dynamics.md"]
        if not report.classes.empty:
            (out / "per_class.md").write_text(class_markdown(report.classes))
            report.classes.to_csv(out / "per_class.csv", index=False, float_format="%.2f")
            report.files += [out / "per_class.md", out / "per_class.csv"]
        if "curves" in figure_kinds:
            report.files += figures.curves(frame, histories, M.TEST_ACC, "test accuracy (%)", out, "curves")
        if "memorisation" in figure_kinds:
            report.files += figures.curves(frame, histories, M.TRAIN_MEMORISED,
                                           "flipped samples predicted as their wrong label (%)", out,
                                           "memorisation", skip_clean=True)
        if "noise" in figure_kinds:
            report.files += figures.accuracy_vs_noise(summary, out, METRICS.get(metric).short)
    names = {r.run_id: r.tags.get(T.RUN_NAME, r.run_id) for r in records}
    for parent, grid in grids.items():
        report.files += figures.heatmap(grid, out / f"heatmap_{parent}", f"study {names.get(parent, parent)}: "
                                        "validation accuracy")
    if log:
        report.run_id = _log_report(tracker, experiment, report, metric, name)
    return report


def _log_report(tracker: Tracker, experiment: str, report: Report, metric: str, name: str | None) -> str:
    """A run tagged aplab.report=1 in ``<experiment>-reports`` holding the report's files as artifacts.

    Its own experiment rather than a tag filter: MLflow's UI lists and counts every run of an
    experiment unless the user types a filter each visit, so reports there would crowd the runs.
    """
    run_id = tracker.start_run(report_experiment(experiment), f"report-{name or experiment}",
                               {T.REPORT: "1", T.REPORT_METRIC: metric, **({T.PIPELINE: name} if name else {})})
    tracker.log_params(run_id, {P_REPORT_METRIC: metric, P_REPORT_RUNS: len(report.runs),
                                P_REPORT_CELLS: len(report.summary)})
    for path in report.files:
        tracker.log_artifact(run_id, path, "report")
    tracker.end_run(run_id, RunStatus.FINISHED)
    return run_id
