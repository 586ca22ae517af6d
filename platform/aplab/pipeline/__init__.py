"""Declarative experiment pipelines: a YAML matrix of runs, run resumably, then reported.

``load_pipeline`` parses and validates a file, ``expand`` resolves every cell's config up front,
``run_pipeline`` trains the cells the tracking store has not finished; ``quickstart`` is ``aplab quickstart``.
"""

from __future__ import annotations

from .cells import CellOutcome, PipelineResult
from .runner import run_pipeline
from .spec import SCALES, Cell, LossEntry, PipelineSpec, expand, load_pipeline, parse_pipeline, scaled


__all__ = ["SCALES", "Cell", "CellOutcome", "LossEntry", "PipelineResult", "PipelineSpec", "expand",
           "load_pipeline", "parse_pipeline", "run_pipeline", "scaled"]
