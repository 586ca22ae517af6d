"""What every room of a run reads: the resolved config, its hash, the tracker and its store, the folder, the rank."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..distributed import Rank
from ..tracking import Tracker


@dataclass
class RunContext:
    """One run as its rooms see it; ``backend`` is torch.distributed's, once this rank joined its group."""

    cfg: RunConfig
    digest: str
    tracker: Tracker | None
    uri: str
    run_dir: Path
    rank: Rank
    backend: str | None = None
