"""Reports: right means, sample stds and paper differences from known runs; layout, figures, errors."""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys

import pytest

from aplab.cli.command import main
from aplab.errors import ConfigError
from aplab.report import build_report
from aplab.report.figures import mean_band, study_grids
from aplab.report.paper import PAPER_CSV
from aplab.report.render import to_latex, to_markdown
from aplab.report.tables import runs_frame, summarise
from aplab.tracking import MemoryTracker

EXP = "exp"


def paper_value(table: str, dataset: str, noise_type: str, rate: str, loss: str) -> float:
    """The paper's number read straight from the CSV (independently of the code under test)."""
    with open(PAPER_CSV, newline="") as handle:
        for row in csv.DictReader(handle):
            if (row["table"], row["dataset"], row["noise_type"], row["noise_rate"], row["loss"]) == (
                    table, dataset, noise_type, rate, loss):
                return float(row["test_acc_mean"])
    raise KeyError((table, dataset, noise_type, rate, loss))


def add_run(tracker: MemoryTracker, dataset: str, loss: str, noise: str, seed: int, last: float,
            best_val: float | None = None, history: list[float] | None = None, memorised: list[float] | None = None,
            params: dict[str, object] | None = None, status: str = "FINISHED", tags: dict[str, str] | None = None,
            experiment: str = EXP, best: float | None = None) -> str:
    """A run as aplab train records it: tags, params, per-epoch metrics, then the summary metrics
    (``best_val``: test accuracy at the best validation epoch; ``best``: the best epoch's test accuracy)."""
    run_tags = {"dataset": dataset, "loss": loss, "noise": noise, "seed": str(seed),
                "config_hash": f"{dataset}-{loss}-{noise}-{seed}-{sorted((params or {}).items())}", **(tags or {})}
    run_id = tracker.start_run(experiment, f"{dataset}-{loss}", run_tags)
    tracker.log_params(run_id, {"data.name": dataset, "loss.name": loss, "runtime.seed": seed, "optim.epochs": 3,
                                **(params or {})})
    history = history or [last]
    memorised = memorised or [0.0] * len(history)
    tracker.log_metrics(run_id, [(e + 1, {"test/acc": a, "train/memorised": m})
                                 for e, (a, m) in enumerate(zip(history, memorised))])
    summary = {"test/acc_last": last}
    if best_val is not None:
        summary["test/acc_best_val"] = best_val
    if best is not None:
        summary["test/acc_best"] = best
    tracker.log_metrics(run_id, [(len(history), summary)])
    tracker.end_run(run_id, status)
    return run_id


LAST = {  # (loss, noise) -> test/acc_last of seeds 0, 1, 2
    ("ce", "symmetric:0.4"): [0.801, 0.815, 0.790],
    ("nce+rce", "symmetric:0.4"): [0.862, 0.857, 0.869],
    ("gce", "symmetric:0.4"): [0.833, 0.829, 0.840],
    ("ce", "none"): [0.901, 0.905, 0.899],
    ("nce+rce", "none"): [0.905, 0.902, 0.908],
    ("gce", "none"): [0.897, 0.890, 0.893],
}
BEST_VAL = {key: [v + 0.01 * (i + 1) for i, v in enumerate(values)] for key, values in LAST.items()}
BEST = {key: [v + 0.03 + 0.005 * i for i, v in enumerate(values)] for key, values in LAST.items()}


@pytest.fixture
def tracker() -> MemoryTracker:
    t = MemoryTracker()
    for (loss, noise), values in LAST.items():
        for seed, value in enumerate(values):
            add_run(t, "cifar10", loss, noise, seed, value, BEST_VAL[(loss, noise)][seed],
                    best=BEST[(loss, noise)][seed])
    return t


def test_means_sample_stds_and_paper_differences(tracker):
    summary = summarise(runs_frame(tracker.find_runs(EXP)), "last", prefer_table="table2")
    assert len(summary) == len(LAST)
    for (loss, noise), values in LAST.items():
        rate = 0.4 if noise != "none" else 0.0
        row = summary[(summary["method"] == loss) & (summary["noise_rate"] == rate)].iloc[0]
        percent = [100 * v for v in values]
        assert row["n"] == 3
        assert row["mean"] == pytest.approx(statistics.mean(percent))
        assert row["std"] == pytest.approx(statistics.stdev(percent))  # sample std, ddof=1
        paper = paper_value("table2", "cifar10", "symmetric" if noise != "none" else "clean",
                            "0.4" if noise != "none" else "0.0", loss)
        assert row["paper_mean"] == pytest.approx(paper)
        assert row["diff"] == pytest.approx(statistics.mean(percent) - paper)
        assert row["paper_table"] == "table2"


@pytest.mark.parametrize("metric,logged", [("best_val", BEST_VAL), ("best", BEST), ("last", LAST)])
def test_each_metric_reads_its_own_summary_metric(tracker, metric, logged):
    summary = summarise(runs_frame(tracker.find_runs(EXP)), metric)
    for (loss, noise), values in logged.items():
        rate = 0.4 if noise != "none" else 0.0
        row = summary[(summary["method"] == loss) & (summary["noise_rate"] == rate)].iloc[0]
        assert row["mean"] == pytest.approx(statistics.mean(100 * v for v in values))


def test_metric_best_through_the_cli(tracker, tmp_path, monkeypatch, capsys):
    import aplab.tracking

    monkeypatch.setattr(aplab.tracking, "make_tracker", lambda uri=None: tracker)
    code = main(["report", "--experiment", EXP, "--metric", "best", "--no-figures", "--no-log",
                 "--out", str(tmp_path), "--tracking-uri", "memory://"])
    assert code == 0
    with open(tmp_path / "table_best.csv", newline="") as handle:
        rows = {(r["method"], r["noise_kind"]): float(r["mean"]) for r in csv.DictReader(handle)}
    assert rows[("nce+rce", "symmetric")] == pytest.approx(
        statistics.mean(100 * v for v in BEST[("nce+rce", "symmetric:0.4")]), abs=1e-4)
    assert (tmp_path / "table_best.md").read_text().startswith("_Best test accuracy (%) over epochs")


def test_a_report_of_a_store_that_does_not_exist_is_one_line_and_makes_none(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["report", "--experiment", EXP, "--no-figures", "--no-log"]) == 2
    err = capsys.readouterr().err
    assert f"--tracking-uri='sqlite:///{tmp_path / 'mlflow.db'}' is not allowed: an existing store" in err
    assert list(tmp_path.iterdir()) == []  # MLflow would have created mlflow.db and its lock


def test_top_two_per_column_are_bold_and_underlined(tracker):
    summary = summarise(runs_frame(tracker.find_runs(EXP)), "last")
    noisy = summary[summary["noise_kind"] == "symmetric"].set_index("method")
    # by hand: nce+rce (86.27) > gce (83.40) > ce (80.20)
    assert list(noisy.sort_values("rank").index) == ["nce+rce", "gce", "ce"]
    markdown = to_markdown(summary)
    nce = next(line for line in markdown.splitlines() if "| NCE+RCE |" in line)
    gce = next(line for line in markdown.splitlines() if "| GCE |" in line)
    mean = statistics.mean(100 * v for v in LAST[("nce+rce", "symmetric:0.4")])
    assert f"**{mean:.2f} ± " in nce
    assert "<u>" in gce and "**" not in gce.split("|")[4]
    latex = to_latex(summary)
    assert r"\textbf{" in latex and r"\underline{" in latex and r"\toprule" in latex


def test_rows_follow_the_paper_order_and_columns_the_noise_rates(tracker):
    summary = summarise(runs_frame(tracker.find_runs(EXP)), "last")
    lines = to_markdown(summary).splitlines()
    header = next(line for line in lines if line.startswith("| dataset"))
    assert header.split("|")[3:5] == [" clean ", " sym. 0.4 "]
    rows = [line.split("|")[2].strip() for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["CE", "GCE", "NCE+RCE"]  # Table 2's order


def test_unfinished_children_and_report_runs_are_left_out(tracker):
    add_run(tracker, "cifar10", "ce", "symmetric:0.4", 3, 0.10, status="FAILED")
    add_run(tracker, "cifar10", "ce", "symmetric:0.4", 4, 0.10, tags={"mlflow.parentRunId": "p"})
    add_run(tracker, "cifar10", "ce", "symmetric:0.4", 5, 0.10, tags={"aplab.report": "1"})
    summary = summarise(runs_frame(tracker.find_runs(EXP)), "last")
    row = summary[(summary["method"] == "ce") & (summary["noise_kind"] == "symmetric")].iloc[0]
    assert row["n"] == 3 and row["seeds"] == "0 1 2"


def test_runs_of_a_loss_with_other_parameters_get_their_own_row():
    t = MemoryTracker()
    for seed, (a, b) in enumerate([(0.7, 0.6), (0.72, 0.62)]):
        add_run(t, "cifar10", "nce+rce", "symmetric:0.8", seed, a, params={"loss.alpha": 1.0, "loss.beta": 1.0})
        add_run(t, "cifar10", "nce+rce", "symmetric:0.8", seed, b, params={"loss.alpha": 10.0, "loss.beta": 1.0})
    summary = summarise(runs_frame(t.find_runs(EXP)), "last")
    assert sorted(summary["method"]) == ["nce+rce (alpha=1.0)", "nce+rce (alpha=10.0)"]
    row = summary[summary["method"] == "nce+rce (alpha=10.0)"].iloc[0]
    assert row["mean"] == pytest.approx(61.0)


def test_build_report_writes_files_logs_a_report_run_and_dynamics(tmp_path):
    t = MemoryTracker()
    curves = {"ce": [0.5, 0.7, 0.6, 0.4], "nce+rce": [0.4, 0.6, 0.7, 0.72]}
    memorised = {"ce": [0.1, 0.2, 0.5, 0.8], "nce+rce": [0.1, 0.1, 0.1, 0.1]}
    for loss in curves:
        for seed in (0, 1):
            shifted = [a + 0.02 * seed for a in curves[loss]]
            add_run(t, "digits", loss, "symmetric:0.8", seed, shifted[-1], history=shifted, memorised=memorised[loss])
    report = build_report(t, EXP, tmp_path, name="demo")
    for name in ("table_last.csv", "table_last.md", "table_last.tex", "runs.csv", "dynamics.md",
                 "curves_digits.png", "curves_digits.pdf", "memorisation_digits.png", "memorisation_digits.pdf"):
        assert (tmp_path / name).is_file(), name
    with open(tmp_path / "table_last.csv", newline="") as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert float(rows["ce"]["mean"]) == pytest.approx(statistics.mean([40.0, 42.0]), abs=1e-4)
    ce = report.dynamics.set_index("method").loc["ce"]
    assert ce["peak"] == pytest.approx(71.0) and ce["peak_epoch"] == 2  # epoch 2: 0.70 and 0.72
    assert ce["drop"] == pytest.approx(30.0) and ce["memorised"] == pytest.approx(80.0)
    logged = t.runs[report.run_id]
    assert logged.tags["aplab.report"] == "1" and logged.status == "FINISHED"
    assert {"report/table_last.md", "report/curves_digits.png"} <= set(logged.artifacts)
    # the report run is kept out of the training runs' experiment, so it is never counted with them
    assert logged.experiment == f"{EXP}-reports"
    assert len(t.find_runs(EXP)) == 4
    again = build_report(t, EXP, tmp_path / "again")
    assert len(again.runs) == 4 and t.runs[again.run_id].experiment == f"{EXP}-reports"


def test_mean_band_is_mean_and_sample_std_over_seeds():
    epochs, mean, std = mean_band([[(1, 0.2), (2, 0.4)], [(1, 0.4), (2, 0.8)], [(1, 0.3), (2, 0.3)]])
    assert list(epochs) == [1, 2]
    assert mean == pytest.approx([0.3, 0.5])
    assert std == pytest.approx([statistics.stdev([0.2, 0.4, 0.3]), statistics.stdev([0.4, 0.8, 0.3])])


def test_study_children_become_an_alpha_beta_heatmap(tmp_path):
    t = MemoryTracker()
    parent = t.start_run(EXP, "study", {"aplab.study": "1"})
    grid = {(0.1, 1.0): [0.5, 0.7], (1.0, 1.0): [0.8], (1.0, 10.0): [0.6], (0.1, 10.0): [0.4]}
    for (alpha, beta), values in grid.items():
        for value in values:
            child = t.start_run(EXP, "trial", {"dataset": "digits", "loss": "nce+rce"}, parent_run_id=parent)
            t.log_params(child, {"loss.alpha": alpha, "loss.beta": beta})
            t.log_metrics(child, [(1, {"val/acc": value})])
            t.end_run(child, "FINISHED")
    found = study_grids(t.find_runs(EXP))[parent]
    assert found.loc[0.1, 1.0] == pytest.approx(0.6)  # mean of 0.5 and 0.7
    assert found.loc[1.0, 10.0] == pytest.approx(0.6)
    report = build_report(t, EXP, tmp_path, log=False)
    assert (tmp_path / f"heatmap_{parent}.png").is_file() and (tmp_path / f"heatmap_{parent}.pdf").is_file()
    assert report.runs.empty  # trials are not table rows


def test_an_experiment_without_finished_runs_is_a_one_line_error(tmp_path, capsys):
    t = MemoryTracker()
    add_run(t, "digits", "ce", "none", 0, 0.9, status="RUNNING")
    with pytest.raises(ConfigError, match="experiment"):
        build_report(t, EXP, tmp_path)
    code = main(["report", "--experiment", "nothing-here", "--tracking-uri", "memory://", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("aplab: error: experiment='nothing-here'")


def test_report_needs_a_file_or_an_experiment(capsys):
    assert main(["report", "--tracking-uri", "memory://"]) == 2
    assert "--experiment" in capsys.readouterr().err


NINE = ("ce", "fl", "gce", "nlnl", "sce", "nfl+mae", "nfl+rce", "nce+mae", "nce+rce")
#: The layout of the paper's Tables 2-5 (Ma et al., 2020), typed from the paper: datasets, noise columns, rows.
PAPER_LAYOUT = {
    "table2": (("mnist", "cifar10", "cifar100"),
               [("clean", "0.0")] + [("symmetric", r) for r in ("0.2", "0.4", "0.6", "0.8")], NINE),
    "table3": (("mnist", "cifar10", "cifar100"), [("asymmetric", r) for r in ("0.1", "0.2", "0.3", "0.4")], NINE),
    "table4": (("cifar10",), [("symmetric", "0.4"), ("symmetric", "0.8"), ("asymmetric", "0.4")],
               ("gce", "ngce+mae", "ngce+rce")),
    "table5": (("webvision_mini",), [("real", "")], ("ce", "gce", "sce", "nce+rce", "nce+mae")),
}


def test_packaged_paper_numbers_fill_every_cell_of_the_papers_tables_once():
    rows = list(csv.DictReader(PAPER_CSV.open()))
    found = [(r["table"], r["dataset"], r["noise_type"], r["noise_rate"], r["loss"]) for r in rows]
    expected = {(table, dataset, kind, rate, loss) for table, (datasets, columns, losses) in PAPER_LAYOUT.items()
                for dataset in datasets for kind, rate in columns for loss in losses}
    assert len(found) == len(set(found))  # no cell twice
    assert set(found) == expected  # no cell missing, none extra


def test_packaged_paper_numbers_match_rows_of_the_papers_table_2():
    rows = list(csv.DictReader(PAPER_CSV.open()))
    cells = {(r["table"], r["dataset"], r["noise_type"], r["noise_rate"], r["loss"]): r["test_acc_mean"]
             for r in rows}
    # Typed from the paper's Table 2 (Ma et al., 2020): MNIST CE and CIFAR-100 NCE+RCE, clean then 0.2-0.8.
    rates = [("clean", "0.0"), ("symmetric", "0.2"), ("symmetric", "0.4"), ("symmetric", "0.6"), ("symmetric", "0.8")]
    for dataset, loss, expected in (("mnist", "ce", [99.25, 97.42, 94.21, 86.00, 47.08]),
                                    ("cifar100", "nce+rce", [69.02, 65.31, 59.48, 47.12, 25.80])):
        got = [float(cells[("table2", dataset, kind, rate, loss)]) for kind, rate in rates]
        assert got == expected


def test_a_study_that_is_not_a_small_grid_is_drawn_as_a_scatter(tmp_path):
    t = MemoryTracker()
    parent = t.start_run(EXP, "tpe", {})
    for i in range(13):
        child = t.start_run(EXP, "trial", {}, parent_run_id=parent)
        t.log_params(child, {"loss.alpha": 0.1 * (i + 1), "loss.beta": 1.0 + i})
        t.log_metrics(child, [(1, {"val/acc": 0.5 + 0.01 * i})])
        t.end_run(child, "FINISHED")
    grid = study_grids(t.find_runs(EXP))[parent]
    assert grid.shape == (13, 13) and grid.stack().max() == pytest.approx(0.62)
    build_report(t, EXP, tmp_path, log=False)
    assert (tmp_path / f"heatmap_{parent}.png").is_file()


IMPORT_AND_DRAW = """
import sys
from pathlib import Path
import aplab.train, aplab.report, aplab.report.figures, aplab.report.tables
from aplab.plotting.run import plot_matrix
import numpy as np
import matplotlib

plot_matrix(np.eye(3), Path(sys.argv[1]), "t", "x", "y")
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules, "aplab.pipeline" in sys.modules)
"""


def test_importing_and_drawing_leaves_the_backend_and_pyplot_alone(tmp_path):
    """A notebook's backend survives importing aplab.train and drawing a run plot; report never loads pipeline."""
    import os

    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", IMPORT_AND_DRAW, str(tmp_path / "m.png")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["svg", "False", "False"]
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
