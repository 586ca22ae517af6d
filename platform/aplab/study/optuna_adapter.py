"""What aplab uses of Optuna beyond its documented API, in one place.

Each use says why and the Optuna version it was checked against (5.1.0, the version installed;
``tests/test_study_queue.py`` covers each, so an upgrade that changes one fails there). Optuna is imported
by the functions that need it, never at import time (the CLI checks a study's arguments without it).
"""

from __future__ import annotations

from typing import Any

#: The system attribute ``Study.enqueue_trial`` writes the enqueued parameters to (Optuna 5.1.0:
#: ``create_trial(state=WAITING, system_attrs={"fixed_params": params})``; ``Trial`` reads it back the same way).
FIXED_PARAMS = "fixed_params"


def enqueued_params(trial) -> dict[str, Any]:
    """The parameters a trial was enqueued with, from Optuna's own record of them; {} when it has none.

    Internal: no public accessor exists (``FrozenTrial.params`` holds only the values already suggested).
    Read only, never written: it lets a study queued before aplab recorded ``aplab.point`` resume without
    queuing its waiting points twice.
    """
    return dict(trial.system_attrs.get(FIXED_PARAMS) or {})


def use_sampler(study, sampler) -> None:
    """Make ``sampler`` the study's sampler from now on: the trial just asked draws its values with it.

    Public, but used live: Optuna's docs assign ``study.sampler`` between ``optimize`` calls (the
    ``PartialFixedSampler`` example); aplab assigns it right after ``study.ask()``, relying on Optuna 5.1.0
    consulting the sampler lazily, at the trial's first ``suggest_*``, so that trial ``n`` of a seeded space
    draws from a sampler seeded by (seed, n) whichever worker runs it.
    """
    study.sampler = sampler


def is_finished(study, number: int) -> bool:
    """Whether trial ``number`` has ended in the storage (re-read now: another process may have told it)."""
    return study.get_trials(deepcopy=False)[number].state.is_finished()


def tell_unless_finished(study, trial, value: float | None, state: str) -> bool:
    """Tell ``trial`` its ``state`` (an Optuna TrialState name) and value; False, telling nothing, when another
    process finished it meanwhile (a command that found its heartbeat late failed it as stale).

    Public API only: a tell that loses that race raises (a ValueError, or UpdateFinishedTrialError from the
    storage); the trial's state, re-read, says whether that is the reason. Any other error is raised.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        study.tell(trial, value, state=TrialState[state])
    except (UpdateFinishedTrialError, ValueError):
        if not is_finished(study, trial.number):
            raise
        return False
    return True


__all__ = ["FIXED_PARAMS", "enqueued_params", "is_finished", "tell_unless_finished", "use_sampler"]


def name_objective(study, name: str) -> None:
    """Name the study's one objective (optuna-dashboard then says ``val/acc``, not "Objective 0").
    ``Study.set_metric_names`` is public but marked experimental (a warning each call): that warning is
    silenced here, for this call only."""
    import warnings

    if study.metric_names == [name]:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names([name])
