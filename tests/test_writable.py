"""A folder the process cannot write is one line before anything starts, not a traceback at the first
checkpoint; a file the command cannot write is one line too. /sys refuses new entries even to root."""

from __future__ import annotations

from pathlib import Path

import pytest

from aplab.cli.command import main
from aplab.errors import ConfigError
from aplab.writable import require_writable

UNWRITABLE = Path("/sys/aplab-test")  # sysfs: mkdir is "Operation not permitted" for every user, root included


def test_a_missing_folder_under_a_writable_one_is_fine_and_is_not_made(tmp_path):
    require_writable(tmp_path / "runs" / "deeper", "tracking.workdir")
    require_writable(tmp_path, "tracking.workdir")
    assert list(tmp_path.iterdir()) == []  # the probe is gone, the missing folders were not made


def test_a_file_in_the_way_and_an_unwritable_place_are_config_errors(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"tracking.workdir=.*file/runs.* a folder: .*file is a file"):
        require_writable(tmp_path / "file" / "runs", "tracking.workdir")
    with pytest.raises(ConfigError, match=r"a folder this process can write \(/sys: "):
        require_writable(UNWRITABLE / "runs", "tracking.workdir")


@pytest.mark.parametrize("command", [
    ["train", "--epochs", "1", "--no-progress"],
    ["pipeline", "run", "PIPELINE", "--no-progress"],
])
def test_an_unwritable_workdir_is_one_line_exit_2_and_leaves_nothing(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("matrix:\n  dataset: [digits]\n  noise: [none]\n  loss: [ce]\n  seed: [0]\n")
    argv = [str(pipeline) if a == "PIPELINE" else a for a in command] + ["--workdir", str(UNWRITABLE / "runs")]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aplab")]
    assert err == [f"aplab: error: tracking.workdir='{UNWRITABLE / 'runs'}' is not allowed: a folder this process "
                   "can write (/sys: Operation not permitted)"]
    assert list(tmp_path.iterdir()) == [pipeline]  # no mlflow.db, no run folder, no failed run


def test_a_file_the_command_cannot_write_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["noise", "digits", "symmetric:0.4", "--out", str(UNWRITABLE / "noise.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"aplab: error: {UNWRITABLE}: Operation not permitted")  # its folder
