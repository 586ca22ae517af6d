"""Refuse, before anything starts, a folder this process cannot write (read-only, another user's, a file in
the way): one line naming the setting, instead of a PermissionError traceback at the first checkpoint."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigError


def require_writable(folder: str | Path, field: str) -> None:
    """Raise ConfigError(field, folder, ...) unless ``folder`` can be written here, or made where it is missing.

    Asked by making and removing a probe folder in ``folder``, or in its nearest existing parent: nothing is
    left behind, and a missing folder is not made (a later refusal must not leave it).
    """
    path = Path(folder).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(field, str(folder), f"a folder: {existing} is a file")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".aplab-probe-", dir=existing))
    except OSError as err:
        raise ConfigError(field, str(folder), f"a folder this process can write ({existing}: "
                                              f"{err.strerror or err})") from None
