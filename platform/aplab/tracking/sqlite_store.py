"""A new SQLite tracking store, made safely by any number of processes at once, and made fast.

MLflow creates a SQLite store by running its schema migrations (seconds), and two processes that
do it at once on one new file break it for good (a race inside the migrations, issue 15.1). So a
store is made under an exclusive file lock beside it, and a new one is a copy of a migrated
template kept once per MLflow version in the user's cache directory (issue 13).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..atomic import atomic_write
from ..cache import cache_dir
from ..locks import file_lock

log = logging.getLogger(__name__)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for any other store (and in-memory SQLite)."""
    if not uri.startswith("sqlite:///") or uri in ("sqlite:///", "sqlite:///:memory:"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


def prepare_store(db: Path, template_key: str, initialise: Callable[[str], None],
                  adopt: Callable[[Path], None]) -> None:
    """Make ``db`` a ready store: copy the template when the file is new, then let ``initialise`` open it.

    ``initialise(uri)`` opens the store with MLflow (migrating it if needed); it runs under the lock, so
    concurrent callers wait for the first instead of migrating the same file together.
    ``adopt(path)`` makes a copy of the template its own store (``mlflow_adapter.adopt_default_experiment``).
    """
    db = db.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(db.with_name(db.name + ".lock")):
        if not db.exists() or db.stat().st_size == 0:
            template = migrated_template(template_key, initialise)
            if template is not None:
                copy_template(template, db, adopt)
        initialise(sqlite_uri(db))


def migrated_template(template_key: str, initialise: Callable[[str], None]) -> Path | None:
    """The cached migrated empty store for ``template_key`` (the MLflow version), made once; None when
    the cache directory cannot be written (the caller then migrates its own file)."""
    folder = cache_dir()
    template = folder / f"mlflow-store-{template_key}.db"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder / f"{template.name}.lock"):
            if not template.exists():
                started = time.perf_counter()
                # ours alone while the lock is held; a crashed attempt's leftover is replaced
                atomic_write(template, lambda scratch: initialise(sqlite_uri(scratch)),
                             temporary=folder / f".{template.name}.partial")
                log.debug("made the store template %s in %.1f s", template, time.perf_counter() - started)
    except OSError as err:
        log.debug("no store template (%s): migrating the store in place", err)
        return None
    return template


def copy_template(template: Path, db: Path, adopt: Callable[[Path], None]) -> None:
    """Copy the template to ``db`` atomically (no half-written store, even on a crash) and make it its own
    (``adopt``: the template's Default experiment carries the template's artifact location and creation time).

    The caller holds the store's lock, so the temporary name is fixed; the umask sets the store's mode.
    """

    def write(scratch: Path) -> None:
        shutil.copyfile(template, scratch)
        adopt(scratch)

    atomic_write(db, write, temporary=db.with_name(f".{db.name}.partial"))
