"""Files that are never half-written: a crash or a full disk leaves the old file or the new one.

One way for every writer: write a temporary file beside the target (same folder, so the rename stays on one
file system), fsync it, rename it over the target. Run files, checkpoints, the study's trials table and
heat-map, and the SQLite tracking store's template and copies all go through ``atomic_write``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: Path, write: Callable[[Path], object], temporary: Path | None = None) -> Path:
    """Call ``write(temporary path)``, fsync that file, then rename it to ``path``; returns ``path``.

    The temporary file sits beside ``path`` with its suffix (a writer that picks the format by suffix, like
    matplotlib's, still does), is created by ``write`` (so the umask sets its mode) and is removed when
    anything fails. By default its name is private to this call; a caller that holds a lock on ``path`` may
    pass a fixed ``temporary``, whose leftover from a crashed attempt is removed first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if temporary is None:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    temporary.unlink(missing_ok=True)
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # gone after the rename; a failed attempt's file otherwise
    return path


def atomic_write_bytes(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """``atomic_write`` for a writer of an open binary file: ``write(handle)``. The file is created readable
    by its owner only (as ``tempfile.mkstemp`` makes it): run files and checkpoints are the user's own."""

    def into(temporary: Path) -> None:
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            write(handle)

    atomic_write(path, into)
