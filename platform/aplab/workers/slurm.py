"""Slurm through submitit: one job array per submission, what Slurm still holds, and the tags of a Slurm task.

``SlurmOptions`` is what the ``--slurm-*`` flags ask for; ``make_executor`` turns it into a submitit
executor; ``SubmissionLog`` records which cells (config digests) each array carries, so a second submission
leaves out what Slurm still queues or runs (asked with ``squeue``, which needs no accounting database);
``follow`` waits for an array with a progress bar. A task is a ``Requeueable``: when Slurm preempts it or its
time runs out, submitit calls ``checkpoint`` and requeues the same call, which resumes from the run folder's
checkpoint (``train`` does). submitit is an optional extra, imported only where a job is submitted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError
from ..locks import file_lock
from ..placement import SchedulerUnavailable, task_id

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'aplab[slurm]'"
DEFAULT_TIME = "4:00:00"
#: How many times a task that hit its time limit is requeued (a preempted task is requeued whatever this says).
MAX_TIMEOUT_REQUEUES = 20
#: squeue states of a task that is still queued, running or about to run again (a requeued task is PENDING).
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                           "REQUEUE_FED", "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED"})
POLL_S = 2.0


class SlurmUnavailable(SchedulerUnavailable):
    """submitit is not installed or Slurm's commands cannot be reached."""


@dataclass(frozen=True)
class SlurmOptions:
    """The resources of one task (one run, or one study worker) and where the array goes."""

    partition: str | None = None
    time_min: int = 240
    gpus_per_run: int = 1
    cpus_per_run: int | None = None
    mem: str | None = None
    max_parallel: int | None = None
    account: str | None = None
    qos: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    def check_fits(self, nproc_per_node: int) -> None:
        """A distributed run (``runtime.nproc_per_node`` ranks) needs a GPU per rank in its task."""
        if self.gpus_per_run and nproc_per_node > self.gpus_per_run:
            raise ConfigError("--slurm-gpus-per-run", self.gpus_per_run,
                              f"at least {nproc_per_node}, the runs' runtime.nproc_per_node (or 0 on CPUs)")


def parse_time(text: str) -> int:
    """A Slurm time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in whole
    minutes, rounded up: submitit counts a task's time in minutes to tell a time-out from a preemption."""
    match = re.fullmatch(r"\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*", text)
    if match is None:
        raise ConfigError("--slurm-time", text, "a Slurm time such as 90 (minutes), 4:00:00 or 1-12:00:00")
    days, first, second, third = (int(g) if g else None for g in match.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + first * 3600 + (second or 0) * 60 + (third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = first * 3600 + second * 60 + third
    else:  # MM[:SS]
        seconds = first * 60 + (second or 0)
    if seconds <= 0:
        raise ConfigError("--slurm-time", text, "a time limit above zero")
    return -(-seconds // 60)


def parse_opts(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``--slurm-opt KEY=VALUE`` items (sbatch's long option names, e.g. ``constraint=a100``)."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
            raise ConfigError("--slurm-opt", item, "KEY=VALUE with an sbatch option name, e.g. constraint=a100")
        pairs.append((key.replace("_", "-"), value.strip()))
    return tuple(pairs)


def require_submitit() -> None:
    """Fail in one line, before anything is submitted, where the ``slurm`` extra is not installed."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SlurmUnavailable(f"--executor slurm needs submitit: {INSTALL_HINT}") from None


PING_SECONDS = 60  # scontrol's own message timeout is 10 s by default; a slow controller still answers


def require_controller() -> None:
    """Fail in one line, before anything is written or submitted, when Slurm's commands are missing or no
    controller answers ``scontrol ping`` (submitit's sbatch would fail later, with files and runs left behind)."""
    scontrol = shutil.which("scontrol")
    if scontrol is None or shutil.which("sbatch") is None:
        raise SlurmUnavailable("--executor slurm needs Slurm's client commands (sbatch, scontrol) on PATH")
    try:
        done = subprocess.run([scontrol, "ping"], capture_output=True, text=True, timeout=PING_SECONDS)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"--executor slurm: no Slurm controller answered `scontrol ping` within "
                               f"{PING_SECONDS} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
        said = next((line for line in lines if line.startswith("Slurmctld")), lines[-1] if lines else "no output")
        raise SlurmUnavailable(f"--executor slurm needs a reachable Slurm controller; `scontrol ping` says: {said}")


def make_executor(folder: Path, options: SlurmOptions, name: str):
    """A submitit SlurmExecutor writing its logs to ``folder``, one task with these resources per call."""
    require_submitit()
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=MAX_TIMEOUT_REQUEUES)
    parameters: dict[str, object] = {"job_name": name, "time": options.time_min}
    optional = {"partition": options.partition, "cpus_per_task": options.cpus_per_run, "mem": options.mem,
                "array_parallelism": options.max_parallel, "account": options.account, "qos": options.qos,
                "gpus_per_node": options.gpus_per_run or None}
    parameters.update({k: v for k, v in optional.items() if v is not None})
    if options.extra:
        parameters["additional_parameters"] = dict(options.extra)
    executor.update_parameters(**parameters)
    return executor


def submit_array(executor, task, items: list) -> list[str]:
    """Submit ``task(item)`` for every item as one job array; the Slurm id of each item's task (``<job>_<i>``;
    submitit sends a single item as a plain job, ``<job>``). sbatch's refusal is one line."""
    try:
        jobs = executor.map_array(task, items)
    except (subprocess.CalledProcessError, FileNotFoundError, OSError) as err:
        detail = getattr(err, "stderr", None) or getattr(err, "output", None) or err
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise SlurmUnavailable(f"sbatch refused the job array: {' '.join(str(detail).split())[:400]}") from None
    return [job.job_id for job in jobs]


def job_of(task_id: str) -> str:
    """The job (array) id of a task id ``<job>_<i>`` or ``<job>``."""
    return task_id.split("_")[0]


class Requeueable:
    """A Slurm task submitit requeues, as the same call, when Slurm preempts it or its time is nearly up
    (submitit's ``checkpoint`` protocol). The call must resume where it stopped: a run from its run folder."""

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def use_task_cpus() -> None:
    """In a Slurm task: torch uses the CPUs the task was given, not every core of the node, and runs
    know their task (``use_slurm``)."""
    use_slurm()
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        import torch

        torch.set_num_threads(int(cpus))


def slurm_task() -> tuple[str, str | None] | None:
    """The Slurm job (an array's own id) and array task this process runs in; None outside Slurm."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    return job, os.environ.get("SLURM_ARRAY_TASK_ID") or None


class SlurmScheduler:
    """Slurm as the ``TaskScheduler`` a run asks: its task from the environment, live tasks from squeue."""

    def current_task(self) -> tuple[str, str | None] | None:
        return slurm_task()

    def active_tasks(self, job_ids: list[str]) -> set[str]:
        return active_tasks(job_ids)


def use_slurm() -> None:
    """Entry points call this before training: runs in a Slurm task tag it and check claims with squeue."""
    from ..placement import use_scheduler

    use_scheduler(SlurmScheduler())


# ----------------------------------------------------------------------------- what Slurm still holds


def active_tasks(job_ids: list[str]) -> set[str]:
    """The tasks (``<job>_<task>``, or ``<job>`` for a job without array) of these jobs that Slurm still
    queues or runs. A job Slurm has forgotten has no active task."""
    if not job_ids:
        return set()
    try:
        out = subprocess.run(["squeue", "--noheader", "--array", "--format=%F|%K|%T"], check=True,
                             capture_output=True, text=True, timeout=60).stdout
    except (subprocess.CalledProcessError, FileNotFoundError, subprocess.TimeoutExpired) as err:
        detail = getattr(err, "stderr", None) or err
        raise SlurmUnavailable(f"squeue cannot tell which tasks Slurm holds: {' '.join(str(detail).split())[:300]}"
                               ) from None
    wanted = set(job_ids)
    active = set()
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3 or parts[0] not in wanted or parts[2] not in ACTIVE_STATES:
            continue
        active.add(task_id(parts[0], parts[1]))
    return active


class SubmissionLog:
    """``submissions.jsonl`` in ``folder``: per job array, the key (a cell's config digest, a worker) of each
    task. Kept beside the run folders, on the shared file system, so every submitting host sees it."""

    FILE = "submissions.jsonl"

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / self.FILE

    @property
    def log_folder(self) -> Path:
        return self.folder / "logs"

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Held from reading what Slurm holds to recording the new array: two submissions never both send a cell."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return file_lock(self.folder / (self.FILE + ".lock"))

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def record(self, task_ids: list[str], keys: list[str]) -> None:
        """Append a submission whose task ``task_ids[i]`` carries ``keys[i]`` (one line: a crash loses no record)."""
        line = json.dumps({"job": job_of(task_ids[0]), "tasks": task_ids, "keys": keys, "submitted": time.time()})
        with open(self.path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def active_keys(self) -> dict[str, str]:
        """The keys whose task Slurm still queues or runs (whatever submission sent it), with that task's id."""
        records = self.records()
        active = active_tasks([r["job"] for r in records])
        return {key: task for r in records for task, key in zip(r["tasks"], r["keys"]) if task in active}


def task_log(folder: Path, task_id: str) -> Path:
    """submitit's stderr file of the task ``task_id`` (its first node's), named by submitit itself.

    ``JobPaths`` is what ``Job.paths`` returns (submitit's documented way to a job's logs); aplab builds it
    from the task id because the ``Job`` objects of an earlier command are gone. Not exported at submitit's
    top level: checked on submitit 1.5.4, covered by tests/test_slurm.py's log-path test.
    """
    from submitit.core.utils import JobPaths

    return JobPaths(Path(folder), job_id=task_id, task_id=0).stderr


def follow(task_ids: list[str], description: str, progress: bool, stream: TextIO, poll_s: float = POLL_S) -> None:
    """Wait until Slurm holds none of these tasks any more, with a bar of the tasks that ended."""
    from tqdm.auto import tqdm

    tasks = set(task_ids)
    jobs = sorted({job_of(t) for t in tasks})
    with tqdm(total=len(tasks), desc=description, unit="task", disable=None if progress else True, file=stream,
              dynamic_ncols=True) as bar:
        while True:
            active = len(active_tasks(jobs) & tasks)
            bar.update(len(tasks) - active - bar.n)
            if not active:
                return
            time.sleep(poll_s)  # Slurm tells nobody when a task ends: squeue is asked again
