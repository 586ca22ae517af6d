"""One trainer per run: a claim in the run folder, held while a process trains the run.

On one host the claim is an ``flock`` on ``claim.lock``: it dies with its process, so the claim of a
killed trainer (SIGKILL included) is taken over at once (on a file system without flock, once the
recorded process, told apart by its start time, is gone). ``claim.json`` says who holds it (host, pid,
process start time, since when, the Slurm task it runs in) and carries a heartbeat the owner refreshes
every epoch. Across hosts sharing the run folder, where ``flock`` may not reach, a claim of another host
is respected until its heartbeat is older than ``STALE_AFTER_S``, or, made in a Slurm task, until that
task is this process's own (Slurm runs one instance of a task at a time: we are its requeue) or Slurm
no longer queues or runs it (where ``squeue`` cannot be asked, the heartbeat alone decides). Two hosts
taking over the same stale claim in the same instant is the one race left (the second to write wins;
the first notices at its next refresh).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import RunClaimed
from ..processes import process_start, same_process
from ..placement import current_task, task_gone, task_id

log = logging.getLogger(__name__)

LOCK_FILE = "claim.lock"
CLAIM_FILE = "claim.json"
#: A claim of another host whose heartbeat (refreshed every epoch) is older than this is abandoned.
STALE_AFTER_S = 3600.0


@dataclass(frozen=True)
class ClaimOwner:
    """Who trains a run: host, process id and start time, since when, last heartbeat (Unix seconds), and the
    Slurm job and array task it runs in (None outside Slurm, and in a claim written before they were recorded)."""

    host: str
    pid: int
    process_start: float
    since: float
    heartbeat: float
    slurm_job: str | None = None
    slurm_task: str | None = None

    @property
    def slurm_task_id(self) -> str | None:
        """The owner's Slurm task as ``squeue`` names it (``<job>_<task>``, or ``<job>``); None outside Slurm."""
        return task_id(self.slurm_job, self.slurm_task) if self.slurm_job else None

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        where = f" in Slurm task {self.slurm_task_id}" if self.slurm_job else ""
        return f"host {self.host} pid {self.pid} since {since}{where}"


def _lock(fd: int) -> bool | None:
    """flock ``fd``: True when locked, None when another process holds it, False where the file system
    has no flock (the claim then goes by its record alone)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        log.debug("no flock on %s (%s): the run claim goes by its record", fd, err)
        return False


def read_owner(run_dir: Path) -> ClaimOwner | None:
    """The claim recorded in ``run_dir``; None when there is none (or it is unreadable: a half-written claim)."""
    try:
        return ClaimOwner(**json.loads((Path(run_dir) / CLAIM_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


class RunClaim:
    """The claim of one run folder; ``with RunClaim(run_dir):`` trains it or raises RunClaimed."""

    def __init__(self, run_dir: Path, stale_after_s: float = STALE_AFTER_S):
        self.run_dir = Path(run_dir)
        self.stale_after_s = stale_after_s
        self.owner: ClaimOwner | None = None
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        """Claim the run, or raise RunClaimed naming its live owner; nothing else happens before this."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        locked = _lock(fd)
        if locked is None:
            os.close(fd)
            raise self._claimed(read_owner(self.run_dir))
        host = socket.gethostname()
        current = read_owner(self.run_dir)
        job, index = current_task() or (None, None)
        gone = None if current is None else self._gone(current, host, locked)
        if current is not None and gone is None:
            os.close(fd)
            raise self._claimed(current)
        if current is not None:
            log.info("taking over the claim of %s on %s (%s)", self.run_dir, current.describe(), gone)
        self._lock_fd = fd
        now = time.time()
        self.owner = ClaimOwner(host, os.getpid(), process_start(os.getpid()), now, now, job, index)
        self._write()

    def _gone(self, owner: ClaimOwner, host: str, locked: bool) -> str | None:
        """Why the recorded owner no longer trains, None while it does. One of this host is gone once we hold
        the lock, or (where the file system has no flock) once its process is gone. Another host's is gone
        once its heartbeat is older than ``stale_after_s``, or before when its Slurm task is ours (we are that
        task requeued) or no longer queued or running (where squeue can be asked)."""
        if owner.host == host:
            alive = not locked and same_process(owner.pid, owner.process_start, 1.0)
            return None if alive else "its process is gone"
        silent = time.time() - owner.heartbeat
        if silent >= self.stale_after_s:
            return f"no heartbeat for {silent:.0f} s"
        task = owner.slurm_task_id
        if task is None:
            return None
        return task_gone(owner.slurm_job, task)

    def refresh(self) -> None:
        """The owner's heartbeat (every epoch); raises RunClaimed if another host took the claim over."""
        current = read_owner(self.run_dir)
        assert self.owner is not None, "refresh() of a claim not acquired"
        if current is not None and (current.host, current.pid, current.since) != (
                self.owner.host, self.owner.pid, self.owner.since):
            raise self._claimed(current)
        self.owner = ClaimOwner(**{**asdict(self.owner), "heartbeat": time.time()})
        self._write()

    def release(self) -> None:
        """Give the claim up: its record goes first, then the lock."""
        if self._lock_fd is None:
            return
        current = read_owner(self.run_dir)
        if current is not None and self.owner is not None and (current.pid, current.host) == (
                self.owner.pid, self.owner.host):
            (self.run_dir / CLAIM_FILE).unlink(missing_ok=True)
        os.close(self._lock_fd)  # closing the descriptor releases the flock
        self._lock_fd = None

    def __enter__(self) -> RunClaim:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _write(self) -> None:
        text = json.dumps(asdict(self.owner), indent=1).encode()
        atomic_write_bytes(self.run_dir / CLAIM_FILE, lambda handle: handle.write(text))

    def _claimed(self, owner: ClaimOwner | None) -> RunClaimed:
        who = owner.describe() if owner is not None else "another process (its claim record is being written)"
        return RunClaimed(f"run folder {self.run_dir} is being trained by {who}; nothing trained here. "
                          "Wait for it to end, or stop that process and run the same command again to resume")
