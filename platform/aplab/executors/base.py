"""The executor protocol and registry: where a pipeline's cells and a study's workers run.

An executor takes what the user asked for (``WorkerRequest``: local workers and GPUs, Slurm's resources,
``--wait``) and runs a pipeline's cells or a study's workers with it. ``aplab pipeline run`` and ``aplab
study`` look one up by ``--executor`` name; a new executor is one module that registers itself here (and
is imported by ``executors/__init__``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..pipeline.shard import Shard, shard_cells
from ..pipeline.spec import Cell, PipelineSpec
from ..pipeline.stacks import SOLO, StackRequest
from ..registry import Registry
from ..workers.gpus import GpuRequest, parse_gpus
from ..workers.slurm import SlurmOptions


@dataclass(frozen=True)
class WorkerRequest:
    """How wide and where to run, as the user asked (``--gpus --runs-per-gpu --workers --stack --wait --slurm-*``)."""

    gpus: GpuRequest = parse_gpus("auto")
    runs_per_gpu: int = 1
    workers: int | None = None
    wait: bool = False
    slurm: SlurmOptions = SlurmOptions()
    progress: bool = True
    stack: StackRequest = SOLO  # --stack: runs trained together as one model on one device


@dataclass(frozen=True)
class PipelineLaunch:
    """A pipeline about to run: its spec, every cell resolved, this host's shard, the store, and the command
    that shows its progress (printed after a submission that is not followed)."""

    spec: PipelineSpec
    cells: list[Cell]
    shard: Shard | None
    uri: str
    status_command: str
    started: float  # time.perf_counter() when the command started

    def my_cells(self) -> list[Cell]:
        """The cells this host trains: its shard's (said once), else all."""
        if self.shard is None:
            return self.cells
        mine = shard_cells(self.cells, self.shard)
        print(f"pipeline {self.spec.name}: shard {self.shard} trains {len(mine)} of the {len(self.cells)} cells")
        return mine

    @property
    def widest_cell(self) -> int:
        """The most processes one cell trains on (``runtime.nproc_per_node``): a group of GPUs per worker."""
        return max(cell.config.runtime.nproc_per_node for cell in self.cells)


class Executor(Protocol):
    """Runs many runs. ``check`` answers before any cell or study is resolved (cheap, no torch)."""

    name: str

    def check(self, request: WorkerRequest) -> None:
        """Refuse, in one ConfigError line, what this executor cannot do with ``request``."""

    def run_pipeline(self, launch: PipelineLaunch, request: WorkerRequest) -> Any:
        """Run the launch's cells; their ``PipelineResult``, or None when nothing ran here to report."""

    def run_study(self, options: Any, checked: Any, request: WorkerRequest) -> Any:
        """Run a study's workers; its ``StudyReport``, or None when it only submitted."""


EXECUTORS: Registry[Executor] = Registry("executor")


def executor(name: str) -> Executor:
    """The executor ``name``; an unknown one is a ConfigError naming --executor with the choices."""
    return EXECUTORS.get(name, field="--executor")
