"""Optuna studies over run-config fields (the paper's alpha x beta grid, TPE), every trial a child MLflow run.

``space`` parses search-space files, ``storage`` opens the journal or database, ``queue`` enqueues and
claims trials and recovers dead workers' ones, ``objective`` runs one trial, ``parent`` keeps the
study's MLflow run, ``runner`` prepares a study and runs worker processes, ``summary`` fills the
parent run, ``cli`` adds ``aplab study``.
"""

from __future__ import annotations

from .objective import OBJECTIVES, TrialContext, TrialOutcome, run_trial
from .runner import StudyJob, StudyOptions, StudyReport, prepare_study, run_study, worker_loop
from .space import ParamSpec, SearchSpace
from .space_file import load_space, parse_space
from .storage import StorageUnavailable, default_storage, open_storage

__all__ = ["OBJECTIVES", "ParamSpec", "SearchSpace", "StorageUnavailable", "StudyJob", "StudyOptions", "StudyReport",
           "TrialContext", "TrialOutcome", "default_storage", "load_space", "open_storage", "parse_space",
           "prepare_study", "run_study", "run_trial", "worker_loop"]
