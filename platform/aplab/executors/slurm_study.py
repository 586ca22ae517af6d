"""A study's workers as one Slurm job array: the study is prepared here, each task claims and runs trials
against the shared storage, and the last worker out closes the parent run."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import ConfigError
from ..study.parent import close_parent_run
from ..study.queue import is_done
from ..study.prepare import StudyJob, StudyOptions, check_options, open_study, prepare_study
from ..study.worker import worker_loop
from ..study.space import SearchSpace
from ..study.storage import database_of, default_storage, is_journal, redact
from ..study.summary import update_parent
from ..tracking import Tracker, default_uri, make_tracker, require_shared_store
from ..workers.slurm import Requeueable, SlurmOptions, job_of, make_executor, require_controller, require_submitit, submit_array, use_task_cpus

log = logging.getLogger(__name__)


def check_shared_storage(url: str, tracking_uri: str) -> None:
    """Workers on other hosts need a storage and a tracking store they all reach: PostgreSQL or a journal
    file (on a shared file system) for the study; anything but ``memory://`` for the runs."""
    if not (is_journal(url) or database_of(url) == "postgresql"):
        raise ConfigError("--storage", redact(url), "PostgreSQL (postgresql+psycopg://...) or a journal file on a "
                          "file system every node shares: Slurm workers run on other hosts")
    require_shared_store(tracking_uri, "--tracking-uri", tracking_uri, "a store every node reaches (an MLflow "
                         "server, or sqlite:/// on a shared file system): Slurm workers run on other hosts")


class StudyWorkerTask(Requeueable):
    """One Slurm task: a worker that claims and runs trials until none is left. Requeued after a preemption,
    it starts again; the trial it was running is failed and its point queued again (``worker_loop``)."""

    def __init__(self, job: StudyJob):
        self.job = job

    def __call__(self, worker: int) -> int:
        import optuna

        use_task_cpus()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        ran = worker_loop(self.job, worker)
        ctx = self.job.context
        study = open_study(self.job)
        if is_done(study, ctx.space, self.job.n_trials):  # the last worker out closes the parent run
            tracker = make_tracker(self.job.tracking_uri)
            update_parent(study, ctx.space, tracker, ctx.parent_run_id, ctx.study_dir)
            close_parent_run(tracker, ctx.parent_run_id, True, [])
        return ran


def submit_study(options: StudyOptions, slurm: SlurmOptions,
                 checked: tuple[SearchSpace, RunConfig, int | None] | None = None
                 ) -> tuple[StudyJob, Any, Tracker, list[str], Path]:
    """Prepare the study here, then submit ``options.workers`` workers as one Slurm job array; returns the
    prepared study, its tracker, the workers' Slurm task ids and their log folder."""
    space, resolved, n_trials = checked or check_options(options)
    storage_url = options.storage or default_storage(default_uri(resolved.tracking.uri), resolved.tracking.workdir)
    check_shared_storage(storage_url, default_uri(resolved.tracking.uri))
    require_submitit()
    require_controller()  # no Slurm to send to: exit 2 before any store or parent run exists
    job, study, tracker = prepare_study(replace(options, storage=storage_url), checked=(space, resolved, n_trials))
    logs = job.context.study_dir / "slurm-logs"
    executor = make_executor(logs, slurm, f"aplab-study-{job.context.study_name}")
    task_ids = submit_array(executor, StudyWorkerTask(job), list(range(options.workers)))
    log.info("study %s: %d Slurm worker(s), job %s", job.context.study_name, options.workers, job_of(task_ids[0]))
    return job, study, tracker, task_ids, logs
