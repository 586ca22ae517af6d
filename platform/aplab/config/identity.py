"""A run's identity: the fields of a resolved config that determine its results, and their hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .. import __version__
from ..keys import affects_results
from .schema import RunConfig


def identity(cfg: RunConfig) -> dict[str, Any]:
    """The part of a resolved config that determines its results."""
    # unset (None) fields are left out: adding one keeps old hashes
    flat = {k: v for k, v in cfg.flat().items() if affects_results(k) and v is not None}
    return {"code_version": __version__, **flat}


def config_hash(cfg: RunConfig) -> str:
    """A 16-hex-digit digest of the run's identity: same config and code version, same hash."""
    text = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_folder(cfg: RunConfig, digest: str | None = None) -> Path:
    """Where a run keeps its checkpoint, state and claim: ``<tracking.workdir>/<experiment>/<config hash>``."""
    return Path(cfg.tracking.workdir) / cfg.tracking.experiment / (digest or config_hash(cfg))
