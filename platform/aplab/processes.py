"""Who is still running: a process told apart from a later one given the same pid by its start time.

Shared by the run claim and the study queue, which both record (host, pid, start time) of an owner.
"""

from __future__ import annotations


def process_start(pid: int) -> float | None:
    """The Unix time process ``pid`` started, or None when it is gone or a zombie."""
    import psutil  # MLflow's system metrics need it too

    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except psutil.Error:
        return None
