"""aplab's cache folder: things made once per machine that every later process reuses (a migrated
MLflow store template, the parsed digits). Deleting it costs only the time to make them again."""

from __future__ import annotations

import os
from pathlib import Path

#: $APLAB_CACHE, else $XDG_CACHE_HOME/aplab, else ~/.cache/aplab.
CACHE_ENV = "APLAB_CACHE"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aplab"
