"""Where a Slurm task's log is: submitit's own naming (``<job>_<array index>_<node>_log.err``)."""

from __future__ import annotations

from pathlib import Path


def test_a_task_log_is_named_as_submitit_names_it(tmp_path: Path) -> None:
    from aplab.workers.slurm import task_log

    assert task_log(tmp_path, "4242_7") == tmp_path / "4242_7_0_log.err"
