"""The Slurm executor: a pipeline's unfinished cells, or a study's workers, as one job array (submitit);
``--wait`` follows it and reports as a local run does."""

from __future__ import annotations

import sys
import time

from ..workers.slurm import follow, job_of, require_controller, require_submitit
from .base import EXECUTORS, PipelineLaunch, WorkerRequest


class SlurmExecutor:
    name = "slurm"

    def check(self, request: WorkerRequest) -> None:
        require_submitit()  # a missing extra: exit 2 before anything is resolved or sent

    def run_pipeline(self, launch: PipelineLaunch, request: WorkerRequest):
        from ..tracking import make_tracker  # looked up at call time
        from .slurm_pipeline import submit_pipeline, wait_for_pipeline

        request.slurm.check_fits(launch.widest_cell)
        require_controller()  # no Slurm to send to: exit 2 before any file or store exists
        cells = launch.my_cells()
        if not cells:
            return None
        spec, tracker = launch.spec, make_tracker(launch.uri)
        device_kind = "cuda" if request.slurm.gpus_per_run > 0 else "cpu"
        sent = submit_pipeline(cells, spec.name, tracker, request.slurm, spec.description,
                               request.stack, device_kind)
        held = f", {len(sent.held)} still queued or running in Slurm" if sent.held else ""
        if not sent.task_ids:
            print(f"pipeline {spec.name}: nothing to submit ({sent.finished} of {len(cells)} cells finished{held})")
        else:
            print(f"pipeline {spec.name}: submitted Slurm job array {sent.job_id} ({len(sent.cells)} of "
                  f"{len(cells)} cells; {sent.finished} finished{held})")
            print(f"logs: {sent.log_folder}")
        if not request.wait:
            print(f"progress: {launch.status_command}")
            return None
        return wait_for_pipeline(sent, cells, spec.name, tracker, request.progress, sys.stderr,
                                 time.perf_counter() - launch.started)

    def run_study(self, options, checked, request: WorkerRequest):
        """Submit the study's workers (``options.workers`` Slurm tasks sharing its storage); with --wait, follow
        them and summarise (the report), else print the job id and return None."""
        from ..study.queue import stale_trials
        from ..study.runner import finish_study
        from .slurm_study import submit_study

        from dataclasses import replace

        request.slurm.check_fits(checked[1].runtime.nproc_per_node)
        options = replace(options, stack=request.stack.cap("cuda" if request.slurm.gpus_per_run > 0 else "cpu"))
        job, study, tracker, task_ids, logs = submit_study(options, request.slurm, checked)
        print(f"study {job.context.study_name}: submitted Slurm job array {job_of(task_ids[0])} "
              f"({options.workers} worker(s))")
        print(f"logs: {logs}")
        if not request.wait:
            print(f"parent run: {job.context.parent_run_id}  storage: {job.storage_url}")
            return None
        follow(task_ids, f"study {job.context.study_name}", options.progress, sys.stderr)
        # Slurm holds none of the tasks now: a trial still RUNNING lost its worker (a cancelled or killed task);
        # finish_study queues its point again and the command says so and exits 1, never 0
        dead = [reason for _, reason in stale_trials(study, job.stale_after_s)]
        return finish_study(job, study, tracker, options, dead)


EXECUTORS.register("slurm", SlurmExecutor())
