"""The local executor: worker processes on this host, one per GPU slot (``--gpus``, ``--runs-per-gpu``,
``--workers``), or CPU workers on a machine without GPUs."""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from ..workers.gpus import gpu_plan
from .base import EXECUTORS, PipelineLaunch, WorkerRequest


class LocalExecutor:
    name = "local"

    def check(self, request: WorkerRequest) -> None:
        if request.wait:
            raise ConfigError("--wait", True, "only with --executor slurm (a local run always waits)")

    def run_pipeline(self, launch: PipelineLaunch, request: WorkerRequest):
        from ..pipeline.runner import run_pipeline
        from ..tracking import make_tracker  # looked up at call time

        plan = gpu_plan(request.gpus, request.runs_per_gpu, request.workers,  # bad GPUs: exit 2, nothing ran
                        gpus_per_run=launch.widest_cell)
        cells = launch.my_cells()
        if not cells:
            return None
        return run_pipeline(cells, launch.spec.name, tracker=make_tracker(launch.uri), workers=plan.workers,
                            progress=request.progress, description=launch.spec.description, gpus=plan.gpus,
                            stack=request.stack)

    def run_study(self, options, checked, request: WorkerRequest):
        from ..study.runner import run_study

        plan = gpu_plan(request.gpus, request.runs_per_gpu, request.workers,  # bad GPUs: exit 2 before anything runs
                        gpus_per_run=checked[1].runtime.nproc_per_node)  # a distributed trial: a group of GPUs
        options = replace(options, workers=plan.workers, gpus=plan.gpus,
                          stack=request.stack.cap("cuda" if plan.gpus else "cpu"))
        return run_study(options, checked=checked)  # the space's points are resolved once, not twice


EXECUTORS.register("local", LocalExecutor())
