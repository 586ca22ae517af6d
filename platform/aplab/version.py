"""Where the running code comes from: the package version and the git commit of its checkout.

One git call per process, shared by the run's ``code_version`` tag and MLflow's source tags.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from . import __version__


@functools.cache
def git_commit() -> str | None:
    """The HEAD commit of the git checkout holding aplab; None outside one or without git."""
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def code_version() -> str:
    """The package version, plus the short git commit when running from a checkout."""
    commit = git_commit()
    return f"{__version__}+{commit[:7]}" if commit else __version__
