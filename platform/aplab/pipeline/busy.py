"""Cells another live process is training (their run folder's claim is held): a pipeline waits for those
claims, then takes each cell up again, where it is found finished, or resumed if that process died.

Two copies of one pipeline (two shells, two hosts on one store) so share its cells instead of failing on
each other's: nothing trains twice, and each ends with every cell accounted for.
"""

from __future__ import annotations

import logging
import time

from ..errors import RunClaimed
from .spec import Cell

log = logging.getLogger(__name__)

#: Seconds between looks at the claims of cells other processes train.
POLL_S = 5.0


def claim_is_free(cell: Cell) -> bool:
    """Whether no live process holds the claim of the cell's run folder (asked as training would claim it)."""
    from ..train.claim import RunClaim  # aplab.train imports torch: not at import (pipeline --help stays light)

    claim = RunClaim(cell.run_dir)
    try:
        claim.acquire()
    except RunClaimed:
        return False
    claim.release()
    return True


def pause(seconds: float) -> None:
    """Wait between looks (its own function: a test replaces it with what another process would do)."""
    time.sleep(seconds)


def wait_for_free(cells: list[Cell], poll_s: float = POLL_S) -> list[Cell]:
    """Block until at least one of ``cells`` is no longer claimed by another process; return those."""
    from ..train.claim import read_owner

    owners = [f"{c.label} ({owner.describe() if (owner := read_owner(c.run_dir)) else 'another process'})"
              for c in cells]
    log.info("waiting for %d cell%s other processes are training, then taking %s up again: %s",
             len(cells), "s" if len(cells) > 1 else "", "each" if len(cells) > 1 else "it", "; ".join(owners))
    while True:
        free = [c for c in cells if claim_is_free(c)]
        if free:
            return free
        pause(poll_s)
