"""``aplab pipeline run --executor slurm``: the unfinished cells as one Slurm job array, one cell (or, with
``--stack``, one stack of cells) per task.

A cell is sent unless the tracking store has it FINISHED or Slurm still queues or runs it from an earlier
submission (the ``SubmissionLog`` beside the run folders says which task carries which cell). Each task
trains its cell with ``train``, which resumes from the run folder's checkpoint into the same MLflow run: a
task requeued after a preemption or its time limit, or the cell of a cancelled task sent again, continues
where it stopped. The run folders and the log folder must be on a file system every node shares.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..errors import RunFailed
from ..keys import T
from ..status import CellState, Outcome
from ..workers.slurm import Requeueable, SlurmOptions, SubmissionLog, follow, job_of, make_executor, submit_array, task_log, use_task_cpus
from ..tracking import Tracker, make_tracker
from ..pipeline.cells import NOT_DONE, CellOutcome, PipelineResult, experiment_description, finished_hashes, train_job
from ..pipeline.spec import Cell
from ..pipeline.stacks import SOLO, StackRequest, stack_jobs
from ..pipeline.progress import cell_states

log = logging.getLogger(__name__)


class CellTask(Requeueable):
    """One array task: train one job (a cell, or a stack of cells) against the tracking store ``uri``; a cell
    that ends unfinished fails the task (Slurm shows it FAILED; submitit's log has the reason)."""

    def __init__(self, uri: str, tags: dict[str, str]):
        self.uri = uri
        self.tags = tags

    def __call__(self, job: list[Cell]) -> list[dict[str, Any]]:
        use_task_cpus()
        datas = train_job(job, make_tracker(self.uri), self.tags, lambda cell: None)
        unfinished = [f"{cell.label} (config {cell.digest}): {data['error']}" for cell, data in zip(job, datas)
                      if data["status"] in NOT_DONE]
        if unfinished:
            raise RunFailed("; ".join(unfinished))
        return datas


@dataclass(frozen=True)
class Submission:
    """What one ``--executor slurm`` call sent: its cells and their Slurm task ids (none when nothing was left
    to send), how many cells were finished already, the cells earlier tasks still hold, and where the logs are."""

    cells: list[Cell]
    task_ids: list[str]
    finished: int
    held: dict[str, str]  # config digest -> task of an earlier submission that Slurm still queues or runs
    log_folder: Path

    @property
    def job_id(self) -> str | None:
        """The job (array) id, None when nothing was sent."""
        return job_of(self.task_ids[0]) if self.task_ids else None


def submission_log(cells: list[Cell]) -> SubmissionLog:
    """The pipeline's submission record: ``<workdir>/<experiment>/slurm``, beside its run folders."""
    tracking = cells[0].config.tracking
    return SubmissionLog(Path(tracking.workdir).resolve() / tracking.experiment / "slurm")


def submit_pipeline(cells: list[Cell], name: str, tracker: Tracker, options: SlurmOptions,
                    description: str = "", stack: StackRequest = SOLO, device_kind: str = "cuda") -> Submission:
    """Send the cells neither FINISHED in the store nor held by Slurm as one job array (one job per task: a
    cell, or a stack of cells with ``stack``); ``Submission.task_ids`` has each sent cell's task."""
    tracker.check()  # an unreachable store fails here, before anything is queued
    experiment = cells[0].config.tracking.experiment
    tracker.describe_experiment(experiment, experiment_description(name, description, len(cells)))
    record = submission_log(cells)
    with record.locked():
        # Slurm first, then the store: a task that ends between the two reads is then seen active or FINISHED;
        # read the other way round it would be neither (not yet FINISHED, no longer queued) and sent again.
        active = record.active_keys()
        done = finished_hashes(tracker, experiment)
        held = {c.digest: active[c.digest] for c in cells if c.digest in active and c.digest not in done}
        todo = [c for c in cells if c.digest not in done and c.digest not in held]
        finished = sum(c.digest in done for c in cells)
        if not todo:
            return Submission([], [], finished, held, record.log_folder)
        executor = make_executor(record.log_folder, options, f"aplab-{name}")
        jobs = stack_jobs(todo, stack, device_kind)
        job_tasks = submit_array(executor, CellTask(tracker.uri, {T.PIPELINE: name}), jobs)
        todo = [cell for job in jobs for cell in job]
        task_ids = [task for job, task in zip(jobs, job_tasks) for _ in job]
        record.record(task_ids, [c.digest for c in todo])
    log.info("pipeline %s: job %s, %d task(s)", name, job_of(task_ids[0]), len(jobs))
    return Submission(todo, task_ids, finished, held, record.log_folder)


def wait_for_pipeline(submission: Submission, cells: list[Cell], name: str, tracker: Tracker, progress: bool,
                      stream: TextIO, seconds_before: float = 0.0) -> PipelineResult:
    """Follow the tasks of the cells (sent now, or held by earlier submissions) until Slurm holds none of them,
    then every cell's outcome from the store."""
    start = time.perf_counter()
    tasks = {**submission.held, **dict(zip((c.digest for c in submission.cells), submission.task_ids))}
    if tasks:
        follow(list(dict.fromkeys(tasks.values())), name, progress, stream)  # a stack's cells share a task
    sent = {c.digest for c in submission.cells}
    outcomes = []
    for state in cell_states(tracker, cells):
        cell = state.cell
        if state.state == CellState.FINISHED:
            status = Outcome.FINISHED if cell.digest in sent else Outcome.DONE
            outcomes.append(CellOutcome(cell, status, state.run_id))
            continue
        where = (f"see {task_log(submission.log_folder, tasks[cell.digest])}" if cell.digest in tasks
                 else "not trained by Slurm")
        ending, what = {
            CellState.RUNNING: (Outcome.KILLED, "its run is still RUNNING in the store (the task was killed?)"),
            CellState.FAILED: (Outcome.FAILED, "its run ended unfinished"),
            CellState.PENDING: (Outcome.NOT_STARTED, "no run of it reached the store (its task was cancelled while "
                                                     "queued, or ended before training began)")}[state.state]
        outcomes.append(CellOutcome(cell, ending, state.run_id, error=f"{what}; {where}"))
    experiment = cells[0].config.tracking.experiment
    return PipelineResult(name, experiment, tracker.uri, outcomes, seconds_before + time.perf_counter() - start)
