"""Optuna studies over run-config fields (the paper's alpha x beta grid, TPE), every trial a child MLflow run.

``space`` parses search-space files, ``storage`` opens the journal or database, ``queue`` enqueues and
claims trials and recovers dead workers' ones, ``objective`` runs one trial, ``parent`` keeps the
study's MLflow run, ``prepare`` checks and creates a study, ``worker`` claims and runs its trials,
``runner`` runs a whole study and refits its best point, ``summary`` fills the parent run.
"""

from __future__ import annotations

from .objective import OBJECTIVES, TrialContext, TrialOutcome, run_trial
from .prepare import StudyJob, StudyOptions, prepare_study
from .runner import StudyReport, run_study
from .space import ParamSpec, SearchSpace
from .space_file import load_space, parse_space
from .storage import StorageUnavailable, default_storage, open_storage
from .worker import worker_loop

__all__ = ["OBJECTIVES", "ParamSpec", "SearchSpace", "StorageUnavailable", "StudyJob", "StudyOptions", "StudyReport",
           "TrialContext", "TrialOutcome", "default_storage", "load_space", "open_storage", "parse_space",
           "prepare_study", "run_study", "run_trial", "worker_loop"]
