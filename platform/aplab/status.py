"""How a run ended, and the CLI exit status each ending gives."""

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
