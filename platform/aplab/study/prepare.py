"""Preparing a study: every check before any trial exists, then the study, its parent run and its queue.

``check_options`` needs no storage (its errors answer before Optuna or torch is imported);
``prepare_study`` creates or finds again the study and its parent MLflow run (``parent``), fails the
trials of dead workers (their points are queued again) and queues the grid's points (``queue``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import RunConfig, config_hash
from ..config.resolve import resolve
from ..errors import ConfigError
from ..keys import T, run_label
from ..status import RunStatus, TrialStatus
from ..tracking import Tracker, default_uri, make_tracker
from ..workers.gpus import check_workers
from ..writable import require_writable
from .objective import OBJECTIVE_METRIC, OBJECTIVES, TrialContext, child_run_id, end_child
from .optuna_adapter import name_objective
from .parent import ensure_parent_run
from .queue import STALE_AFTER_S, enqueue_grid, fail_for_retry, stale_trials
from .space import SearchSpace, check_against_config
from .space_file import load_space
from .storage import default_storage, is_journal, open_storage, redact, storage_lock

log = logging.getLogger(__name__)

# Study user attributes: what the study was made with (checked on resume).
STUDY_ATTRS = ("aplab.base_hash", "aplab.space_digest", "aplab.objective")


@dataclass(frozen=True)
class StudyOptions:
    """The choices of one ``aplab study`` command."""

    space_path: str
    base: RunConfig
    study_name: str | None = None
    storage: str | None = None
    workers: int = 1
    gpus: tuple[str, ...] = ()  # each worker's CUDA_VISIBLE_DEVICES (aplab.workers.gpus.gpu_plan); () on CPU
    refit: bool = False
    objective: str = "last"
    n_trials: int | None = None
    progress: bool = True
    stale_after_s: float = STALE_AFTER_S
    stack: int = 1  # trials a worker trains at once as one stack (``--stack``)


@dataclass(frozen=True)
class StudyJob:
    """A prepared study as every worker receives it (picklable, for spawned processes)."""

    context: TrialContext
    storage_url: str
    tracking_uri: str
    n_trials: int | None
    stale_after_s: float = STALE_AFTER_S
    stack: int = 1  # trials per stack


def default_study_name(space: SearchSpace, cfg: RunConfig) -> str:
    """``<space>-<dataset>-<loss>-<noise>-s<seed>`` of the resolved base config."""
    return f"{space.name}-{run_label(cfg)}"


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", name)


def check_options(options: StudyOptions) -> tuple[SearchSpace, RunConfig, int | None]:
    """Every check that needs no storage: the space, the base config, the objective, the budget, workers.

    The arguments come first: their errors answer without importing Optuna or torch."""
    if options.n_trials is not None and (isinstance(options.n_trials, bool) or options.n_trials < 1):
        raise ConfigError("--n-trials", options.n_trials, "an integer >= 1")
    if isinstance(options.workers, bool) or not isinstance(options.workers, int) or options.workers < 1:
        raise ConfigError("--workers", options.workers, "an integer >= 1")
    if not Path(options.space_path).is_file():
        raise ConfigError("--space", options.space_path, "an existing search-space YAML file")
    space = load_space(options.space_path)
    OBJECTIVES.get(options.objective, field="--objective")
    base = options.base
    defaults = RunConfig().flat()
    for name in space.param_names:
        if base.flat()[name] != defaults[name]:
            raise ConfigError(name, base.flat()[name], f"unset: the space {space.source} searches {name}")
    resolved = resolve(base)
    if resolved.data.val_fraction <= 0:
        raise ConfigError("data.val_fraction", resolved.data.val_fraction,
                          "a number in (0, 1): a study chooses on validation accuracy, never on test accuracy")
    if resolved.tracking.offline:
        raise ConfigError("tracking.offline", True, "false: a study records every trial as a child MLflow run")
    check_against_config(space, base)
    if space.is_grid and options.n_trials is not None:
        raise ConfigError("--n-trials", options.n_trials,
                          f"unset: the grid {space.source} runs each of its {len(space.points())} points once")
    n_trials = None if space.is_grid else (options.n_trials or space.n_trials)
    if not space.is_grid and n_trials is None:
        raise ConfigError("--n-trials", n_trials, f"an integer >= 1 (the space {space.source} sets no n_trials)")
    check_workers(options.workers, options.gpus, str(resolved.tracking.uri or ""))
    require_writable(resolved.tracking.workdir, "tracking.workdir")
    return space, resolved, n_trials


def open_study(job: StudyJob, storage=None):
    """Load the (existing) study with the space's sampler and pruner."""
    import optuna

    space = job.context.space
    return optuna.load_study(study_name=job.context.study_name, storage=storage or open_storage(job.storage_url),
                             sampler=space.make_sampler(), pruner=space.make_pruner())


def _check_identity(study, expected: dict[str, str]) -> None:
    """A study found again must have been made with the same base config, space and objective."""
    attrs = study.user_attrs
    for key, value in expected.items():
        if key in attrs and attrs[key] != value:
            what = key.split(".", 1)[1].replace("_", " ")
            raise ConfigError("--study-name", study.study_name,
                              f"a new name: this study exists with another {what} ({attrs[key]}, now {value}); "
                              "resume it with the same command or pass --study-name")
    for key, value in expected.items():
        if key not in attrs:
            study.set_user_attr(key, value)


def recover_stale(study, ctx: TrialContext, tracker: Tracker, stale_after_s: float) -> list[int]:
    """Fail the RUNNING trials of dead workers, queue their points again and close their child runs.

    Only the command whose FAIL lands queues the point (``fail_for_retry``), so two commands
    recovering at once do not both run it again. Call under the storage lock.
    """
    recovered = []
    for trial, reason in stale_trials(study, stale_after_s):
        if not fail_for_retry(study, trial, reason):
            continue
        end_child(tracker, child_run_id(tracker, ctx, trial.number), RunStatus.FAILED,
                  {T.TRIAL_STATE: TrialStatus.FAIL, T.FAILURE_REASON: reason})
        recovered.append(trial.number)
    return recovered


def prepare_study(options: StudyOptions, tracker: Tracker | None = None,
                  checked: tuple[SearchSpace, RunConfig, int | None] | None = None) -> tuple[StudyJob, Any, Tracker]:
    """Check everything (unless ``checked``, what ``check_options`` returned for these options), then create
    or resume the study, its parent run and its queue."""
    space, resolved, n_trials = checked or check_options(options)  # before Optuna: a bad argument answers fast
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage_url = options.storage or default_storage(default_uri(resolved.tracking.uri), resolved.tracking.workdir)
    if is_journal(storage_url):  # one spelling of the file, whatever the working directory
        storage_url = str(Path(storage_url).expanduser().resolve())
    tracker = tracker or make_tracker(resolved.tracking.uri)
    tracker.check()  # an unreachable tracking server fails here, like an unreachable storage below
    storage = open_storage(storage_url)
    name = options.study_name or default_study_name(space, resolved)
    experiment_dir = Path(resolved.tracking.workdir) / resolved.tracking.experiment
    study_dir = (experiment_dir / f"study-{_folder_name(name)}").resolve()
    context = TrialContext(name, options.base, space, options.objective, study_dir, None,
                           options.progress and options.workers == 1)
    with storage_lock(storage_url, name):
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                    sampler=space.make_sampler(), pruner=space.make_pruner())
        name_objective(study, OBJECTIVE_METRIC)
        _check_identity(study, dict(zip(STUDY_ATTRS, (config_hash(resolved), space.digest(), options.objective))))
        parent = ensure_parent_run(study, context, tracker, storage_url, n_trials, options.space_path, resolved)
        context = replace(context, parent_run_id=parent)
        recovered = recover_stale(study, context, tracker, options.stale_after_s)
        queued = enqueue_grid(study, space)
    if recovered:
        log.warning("trials %s of dead workers marked FAILED; their points run again", recovered)
    job = StudyJob(context, storage_url, tracker.uri, n_trials, options.stale_after_s, options.stack)
    log.info("study %s: %d points queued, storage %s, parent run %s", name, queued, redact(storage_url), parent)
    return job, study, tracker


__all__ = ["STUDY_ATTRS", "StudyJob", "StudyOptions", "check_options", "default_study_name", "open_study",
           "prepare_study", "recover_stale"]
