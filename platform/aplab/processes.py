"""Processes: who is still running (a process told apart from a later one given the same pid by its start
time: the run claim and the study queue record owners so), and children that die with their parent.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time


def process_start(pid: int) -> float | None:
    """The Unix time process ``pid`` started, or None when it is gone or a zombie."""
    import psutil  # MLflow's system metrics need it too

    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except psutil.Error:
        return None


def same_process(pid: int, start: float, tolerance_s: float) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``start`` (within ``tolerance_s``), not a
    later process given the same pid."""
    started = process_start(pid)
    return started is not None and abs(started - start) < tolerance_s


def cores_share(processes: int) -> int:
    """Threads for each of ``processes`` processes sharing the cores this process may run on (its CPU
    affinity: a Slurm allocation, a pipeline worker's cores), not the machine's."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // processes)


def die_with_parent(parent: int | None = None) -> None:
    """Make this process die with its parent (``parent``: its pid, when known before this process ran), so a
    killed pipeline or launcher leaves no worker or rank behind."""
    parent = os.getppid() if parent is None else parent
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        return
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # elsewhere: poll the parent
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
