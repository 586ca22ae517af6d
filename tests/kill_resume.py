"""Helpers of the kill-and-resume tests: the CLI as a child process, stopped at an epoch, resumed, and
compared with an uninterrupted run of the same command."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run_until(command: list[str], env: dict[str, str], cwd: Path, epoch_line: str) -> subprocess.Popen:
    """Start ``command`` with its per-epoch lines (written after each checkpoint) and return it, still running,
    once it printed a line starting with ``epoch_line``; reading blocks until each next line (no sleep)."""
    progress = [arg for arg in command if arg != "--no-progress"]
    process = subprocess.Popen(progress, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith(epoch_line):
            return process
    raise AssertionError(f"the run ended before {epoch_line!r}:\n{''.join(seen)}")


def assert_resumes_to_the_uninterrupted_result(command: list[str], straight: list[str], env: dict[str, str],
                                               cwd: Path, uri: str, epochs: int) -> None:
    """Run the killed ``command`` again and the same run uninterrupted (``straight``: experiment "straight"):
    the resumed run is the killed one, FINISHED, every epoch logged once, with the straight run's metrics."""
    from aplab.tracking import make_tracker

    resumed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    done = subprocess.run(straight, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    tracker = make_tracker(uri)
    (killed,) = tracker.find_runs("aplab")
    (clean,) = tracker.find_runs("straight")
    assert killed.status == "FINISHED"
    steps = sorted(step for step, _ in tracker.metric_history(killed.run_id, "train/loss"))
    assert steps == list(range(1, epochs + 1))  # no epoch missing or doubled
    for key in ("test/acc", "val/acc", "train/loss", "test/acc_last"):
        assert killed.metrics[key] == clean.metrics[key], key
