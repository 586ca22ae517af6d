"""Figures that compare at a glance (issue 24, item 6): one fixed style per loss in every figure, the run's loss on
its own axis, legends off the data, a labelled ±1 std band, and per-class accuracy in the report."""

from __future__ import annotations

import numpy as np
import pytest

from aplab.plotting.palette import KNOWN, style
from aplab.report import build_report
from aplab.tracking import MemoryTracker
from tests.test_report import add_run


def test_every_known_loss_has_its_own_look_and_keeps_it():
    looks = [style(name) for name in KNOWN]
    assert len({(s.colour, s.marker, s.dash) for s in looks}) == len(KNOWN)
    assert len({s.colour for s in looks[:20]}) == 20  # the paper's losses: distinct colours
    assert style("nfl+mae") != style("nce+mae") and style("nfl+mae").marker != style("nce+mae").marker
    assert style("nce+rce (beta=100)") == style("nce+rce") == style("NCE+RCE")
    assert style("mypkg.losses:MyLoss") == style("mypkg.losses:MyLoss")  # a name's look is its own, anywhere


def drawn_curves(fig):
    """{legend label: (colour, marker)} of the figure-level legend, and the axes' own legends."""
    (legend,) = fig.legends
    found = {}
    for handle, text in zip(legend.legend_handles, legend.get_texts()):
        if hasattr(handle, "get_marker"):
            found[text.get_text()] = (handle.get_color(), handle.get_marker())
    return found, [ax.get_legend() for ax in fig.axes]


def test_report_curves_use_the_palette_a_shared_legend_and_a_labelled_band(tmp_path, monkeypatch):
    from aplab.report import figures

    saved = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, paths: saved.append(fig) or list(paths))
    tracker = MemoryTracker()
    for loss in ("ce", "nce+rce"):
        for seed in (0, 1):
            add_run(tracker, "digits", loss, "symmetric:0.6", seed, 0.5, history=[0.3, 0.4, 0.5])
    build_report(tracker, "exp", tmp_path, figure_kinds=("curves",), log=False)
    (fig,) = saved
    found, axes_legends = drawn_curves(fig)
    assert found == {"CE (n=2)": (style("ce").colour, style("ce").marker),
                     "NCE+RCE (n=2)": (style("nce+rce").colour, style("nce+rce").marker)}
    assert figures.BAND_LABEL in [t.get_text() for t in fig.legends[0].get_texts()]
    assert axes_legends == [None] * len(fig.axes)  # no legend inside a panel, over the curves


def test_a_runs_curves_put_its_loss_and_the_held_out_loss_on_separate_axes(tmp_path, monkeypatch):
    from aplab.keys import M
    from aplab.plotting import run

    saved = []
    monkeypatch.setattr(run, "save_figure", lambda fig, path: saved.append(fig) or [path])
    history = [{"epoch": e, M.TRAIN_ACC_NOISY: 0.5, M.TRAIN_ACC_CLEAN: 0.5, M.VAL_ACC: 0.5, M.TEST_ACC: 0.5,
                M.TRAIN_LOSS: 700.0 - e, M.VAL_LOSS: 3.0, M.TEST_LOSS: 2.5, M.TRAIN_MEMORISED: 0.1,
                M.TRAIN_CORRECTED: 0.8} for e in range(1, 6)]
    run.plot_curves(history, tmp_path / "curves.png", "digits nce+rce")
    (fig,) = saved
    by_title = {ax.get_title(): ax for ax in fig.axes}
    train_axis, held_out = by_title["training loss"], by_title["held-out loss"]
    assert [line.get_label() for line in train_axis.get_lines()] == ["train (the run's loss)"]
    assert {line.get_label() for line in held_out.get_lines()} == {"validation", "test"}
    assert held_out.get_ylim()[1] < 10 < 600 < train_axis.get_ylim()[1]  # CE's scale, not the run's loss's
    for ax in fig.axes:  # every legend sits under its panel (its top below the axes' bottom)
        anchor = ax.get_legend().get_bbox_to_anchor().transformed(ax.transAxes.inverted())
        assert anchor.y0 < 0


def test_figures_are_saved_sharper_than_a_screen_pixel():
    from aplab.plotting.figure import DPI

    assert DPI >= 150


def test_a_run_that_never_predicts_a_class_is_named_in_the_report(tmp_path):
    tracker = MemoryTracker()
    for seed in (0, 1):
        run_id = add_run(tracker, "digits", "nce+rce", "symmetric:0.6", seed, 0.86)
        per_class = {f"test/acc_class/{k}": (0.0 if (seed == 0 and k == 2) else 0.9) for k in range(10)}
        tracker.log_metrics(run_id, [(1, per_class)])
    report = build_report(tracker, "exp", tmp_path, figure_kinds=(), log=False)
    assert "NCE+RCE seed 0" in report.plain and "class 2" in report.plain and "seed 1" not in report.plain
    table = (tmp_path / "per_class.md").read_text()
    assert "| digits | sym 60% | NCE+RCE | 0 | 2 | 0.0 | 2 |" in table.replace("symmetric 60%", "sym 60%") or \
        "| 0 | 2 | 0.0 | 2 |" in table
    assert "| 1 | 0 | 90.0 | none |" in table


def test_class_accuracies_come_from_the_confusion_matrix_rows():
    from aplab.train.artifacts import class_accuracies

    matrix = np.array([[3, 1, 0], [2, 0, 2], [0, 0, 5]])  # rows: true class; class 1 never predicted right
    assert class_accuracies(matrix) == {"test/acc_class/0": 0.75, "test/acc_class/1": 0.0, "test/acc_class/2": 1.0}
    assert class_accuracies(np.array([[1, 0], [0, 0]])) == {"test/acc_class/0": 1.0}  # an absent class: no value


@pytest.mark.parametrize("paper", [False, True])
def test_the_caption_mentions_the_paper_only_when_shown(paper):
    import pandas as pd

    from aplab.report.render import caption, plain_caption

    summary = pd.DataFrame({"n": [3], "paper_mean": [80.0 if paper else float("nan")]})
    assert ("paper's mean" in caption("last", summary)) is paper
    assert ("paper's mean" in plain_caption("last", summary)) is paper
    assert plain_caption("last", summary).startswith("Test accuracy (%) at the last epoch")
