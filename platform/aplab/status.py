"""Every status vocabulary, defined once: how a run ended, where a pipeline cell stands, how one pipeline
invocation left a cell, and a study trial's state; and the CLI exit status each run ending gives.

All are StrEnums: stored in state.json, the tracker and the trials table, and compared with the tracker's
strings, as plain text.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's state in its folder and in the tracker (MLflow's names; SKIPPED: found finished, nothing run).

    A StrEnum, so it is stored in state.json and compared with the tracker's strings as plain text.
    """

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    SKIPPED = "SKIPPED"

    @property
    def exit_code(self) -> int:
        """0 when the run's results exist (trained now or earlier), 130 when interrupted, else 1."""
        return EXIT_CODES[self]

    @property
    def done(self) -> bool:
        """Whether the run has its final results: a re-run has nothing to do."""
        return self in (RunStatus.FINISHED, RunStatus.SKIPPED)


EXIT_CODES = {RunStatus.FINISHED: 0, RunStatus.SKIPPED: 0, RunStatus.FAILED: 1, RunStatus.RUNNING: 1,
              RunStatus.KILLED: 130}

#: MLflow's status of a run created but not yet started: aplab never sets it, and reads it as running.
MLFLOW_SCHEDULED = "SCHEDULED"


class CellState(StrEnum):
    """Where a pipeline cell stands in the tracking store (``aplab pipeline status``), most advanced first:
    a run of it FINISHED, one RUNNING, all FAILED (or KILLED: the next run retries or resumes it), or none
    (PENDING)."""

    FINISHED = "FINISHED"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    PENDING = "PENDING"


class Outcome(StrEnum):
    """How one ``aplab pipeline run`` left a cell: trained now (FINISHED), found FINISHED in the store (DONE),
    found finished in its run folder by train() (SKIPPED), or not finished: FAILED, KILLED (interrupted;
    a re-run resumes it), BUSY (another live process trains it: the pipeline waits for its claim, then
    takes the cell up again) or NOT_STARTED (its Slurm task ended before any run of it existed: cancelled
    while queued, or lost at its start). FINISHED, SKIPPED, FAILED and KILLED are RunStatus's names."""

    FINISHED = "FINISHED"
    DONE = "DONE"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    BUSY = "BUSY"
    NOT_STARTED = "NOT_STARTED"

    @property
    def done(self) -> bool:
        """Whether the cell has its results after this invocation (FAILED, KILLED, BUSY, NOT_STARTED: not)."""
        return self not in (Outcome.FAILED, Outcome.KILLED, Outcome.BUSY, Outcome.NOT_STARTED)


class TrialStatus(StrEnum):
    """A study trial's state as aplab records it (tag ``trial.state``, the trials table): the names of Optuna's
    ``TrialState`` (imported only where Optuna runs), and FAIL_RETRIED for a FAIL whose point another trial
    runs again (a dead worker, a crash)."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"
    FAIL_RETRIED = "FAIL_RETRIED"


#: The trial states that end a trial (what a study counts as done).
TRIAL_ENDS = (TrialStatus.COMPLETE, TrialStatus.PRUNED, TrialStatus.FAIL)
