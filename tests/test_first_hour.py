"""The smaller points of a new user's first hour (issue 24, item 8): every option described, smoke-scale numbers
marked as checks, the files aplab writes ignored by git."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from aplab.cli.command import build_parser

REPO = Path(__file__).resolve().parents[1]


def subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


@pytest.mark.parametrize("name", ["quickstart", "ui"])
def test_every_option_is_described(name):
    parser = subcommand(name)
    undescribed = [a.option_strings for a in parser._actions if not a.help]
    assert undescribed == [] and parser.description


def test_files_aplab_writes_are_ignored_by_git(tmp_path):
    names = ["optuna.journal", "mlflow.db", "mlflow-ui.log", "aplab_runs/x/state.json", "aplab_out/quickstart/a.png",
             "optuna.journal.aplab-lock"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=REPO, capture_output=True, text=True)
    assert sorted(done.stdout.split()) == sorted(names)


def test_a_smoke_scale_report_says_its_numbers_are_checks(monkeypatch, capsys):
    import pandas as pd

    import aplab.report
    from aplab.cli.command import main
    from aplab.cli.report import SMOKE_NOTE
    from aplab.report import Report
    from aplab.tracking import MemoryTracker

    def fake_report(tracker, experiment, out, **kwargs):
        return Report(Path(out), pd.DataFrame({"n": [1]}), pd.DataFrame(), pd.DataFrame(), plain="table\n")

    monkeypatch.setattr(aplab.report, "build_report", fake_report)
    for scale, shown in (("smoke", True), ("full", False)):
        argv = ["report", str(REPO / "pipelines" / "quickstart.yaml"), "--scale", scale, "--tracking-uri",
                "memory://", "--no-figures", "--no-log"]
        monkeypatch.setattr("aplab.tracking.make_tracker", lambda uri: MemoryTracker())
        assert main(argv) == 0
        assert (SMOKE_NOTE in capsys.readouterr().out) is shown
