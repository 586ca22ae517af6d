"""``aplab quickstart``: the packaged quickstart pipeline on the embedded digits, then its table and plots.

It shows the paper's central effect: under heavy symmetric noise CE memorises the wrong labels and
loses test accuracy after its peak, while the active-passive loss keeps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..tracking import make_tracker
from ..processes import cores_share
from .runner import run_pipeline
from .spec import expand, load_pipeline
from .stacks import SOLO, StackRequest, parse_stack

#: The packaged copy of pipelines/quickstart.yaml (tests keep the two equal).
QUICKSTART = Path(__file__).with_name("quickstart.yaml")


def dynamics_lines(dynamics) -> list[str]:
    """One sentence per loss: best test accuracy and when, last-epoch accuracy, and memorisation."""
    from ..report.render import column_label, method_label

    lines = []
    for _, r in dynamics.iterrows():
        memorised = "" if math.isnan(r["memorised"]) else f"; predicts {r['memorised']:.0f}% of flipped labels as their wrong label"
        lines.append(f"  {method_label(r['method']):<8} {r['dataset']} {column_label(r['noise_kind'], r['noise_rate'])}: "
                     f"best test {r['peak']:.1f}% (epoch {r['peak_epoch']:.0f}), last epoch {r['last']:.1f}% "
                     f"(drop {r['drop']:.1f} points){memorised}")
    return lines


@dataclass(frozen=True)
class QuickstartOptions:
    """Where the quickstart's runs, table and plots go (``aplab quickstart``'s flags)."""

    tracking_uri: str | None = None
    experiment: str | None = None  # default: the pipeline's own
    workdir: str = "aplab_runs"
    out: str = "aplab_out/quickstart"
    workers: int | None = None  # None: fastest_layout()


def fastest_layout(runs: int) -> tuple[int, StackRequest]:
    """Workers and stacking that train the quickstart fastest (benchmarks/RESULTS.md, "Stacked training"): on a
    GPU one worker training the runs as stacks; on a CPU one single-threaded worker per core, unstacked (the
    CPU's convolutions are compute-bound: fusing runs saves per-step overhead that is small there)."""
    import torch

    if torch.cuda.is_available():
        return 1, parse_stack("auto")
    return max(1, min(runs, cores_share(1))), SOLO


def run_quickstart(args: QuickstartOptions) -> int:
    """Run the quickstart pipeline (resumably), print its table and where the plots and runs are."""
    from ..report import build_report

    spec = load_pipeline(QUICKSTART)
    tracker = make_tracker(args.tracking_uri)
    experiment = args.experiment or spec.experiment
    cells = expand(spec, experiment=experiment, tracking_uri=tracker.uri, workdir=args.workdir)
    print(f"aplab quickstart: {spec.description}; {len(cells)} runs "
          f"({', '.join(spec.loss_order)} x seeds {', '.join(map(str, spec.seeds))}, {cells[0].config.optim.epochs} epochs)")
    workers, stack = fastest_layout(len(cells))
    result = run_pipeline(cells, spec.name, tracker=tracker, workers=args.workers or workers,
                          description=spec.description, stack=stack)
    print(result.summary_line())
    report = build_report(tracker, experiment, args.out, hashes={c.digest for c in cells}, name=spec.name,
                          order=spec.loss_order, figure_kinds=("curves", "memorisation"))
    print()
    print("Test accuracy (%) at the last epoch, mean ± sample std over seeds (* best):")
    print(report.plain)
    print("What happened during training (means over seeds):")
    print("\n".join(dynamics_lines(report.dynamics)))
    print()
    out = Path(args.out)
    for path in report.figures():
        print(f"plot:   {path}")
    print(f"tables: {out / 'table_last.md'} (also .csv, .tex), {out / 'dynamics.md'}")
    print(f"runs:   MLflow {tracker.uri}, experiment {experiment!r}; browse with "
          f"`aplab ui --tracking-uri {tracker.uri}`")
    for outcome in result.failed:
        print(f"{outcome.status} {outcome.cell.label}: {outcome.error}")
    return 1 if result.failed else 0
