"""Where a study lives: a journal file on one host, or PostgreSQL across hosts.

The storage URL is what ``--storage`` takes and what ``optuna-dashboard`` opens: a file path is an
Optuna journal (``JournalStorage`` + ``JournalFileBackend``, safe for several processes on one host);
``postgresql+psycopg://...`` (or ``sqlite:///...``, ``mysql+...://``) is an ``RDBStorage``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from ..errors import AplabError, ConfigError
from ..locks import file_lock

ENV_STORAGE = "APLAB_OPTUNA_STORAGE"
JOURNAL_NAME = "optuna.journal"
RDB_SCHEMES = ("postgresql", "sqlite", "mysql")
CONNECT_TIMEOUT_S = 5
SQLITE_HEADER = b"SQLite format 3\x00"


class StorageUnavailable(AplabError):
    """The Optuna storage cannot be opened or reached."""


def default_storage(tracking_uri: str, workdir: str | Path) -> str:
    """$APLAB_OPTUNA_STORAGE, else ``optuna.journal`` beside a SQLite/file tracking store, else in ``workdir``."""
    if os.environ.get(ENV_STORAGE):
        return os.environ[ENV_STORAGE]
    if tracking_uri.startswith("sqlite:///"):
        store = Path(tracking_uri[len("sqlite:///"):])
    elif tracking_uri.startswith("file:"):
        store = Path(urlparse(tracking_uri).path)
    elif "://" not in tracking_uri:
        store = Path(tracking_uri)
    else:  # a tracking server or a database: no local store to sit beside
        return str(Path(workdir) / JOURNAL_NAME)
    return str(store.parent / JOURNAL_NAME)


def is_journal(url: str) -> bool:
    """A storage URL without a scheme is a journal file path."""
    return "://" not in url


def database_of(url: str) -> str:
    """The database a storage URL names, without its driver: ``postgresql+psycopg://...`` -> ``postgresql``."""
    return url.split("://", 1)[0].split("+", 1)[0]


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and MLflow tags."""
    if is_journal(url):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can parse: show only the scheme
        return url.split("://", 1)[0] + "://***"


def _journal(path_text: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(path_text).expanduser()
    if path.is_dir():
        raise ConfigError("--storage", path_text, "a journal file path (this is a folder)")
    if path.is_file():
        with path.open("rb") as handle:
            if handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER:
                raise ConfigError("--storage", path_text, f"sqlite:///{path} (this file is a SQLite database)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except Exception as err:  # unwritable folder, corrupt journal ...
        raise StorageUnavailable(f"Optuna journal {path_text} cannot be opened ({type(err).__name__}: {err})") from None


def _rdb(url: str):
    from optuna.storages import RDBStorage

    scheme = database_of(url)
    if scheme not in RDB_SCHEMES:
        raise ConfigError("--storage", redact(url), "a journal file path, sqlite:///FILE or "
                          "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB")
    engine_kwargs: dict[str, object] = {"pool_pre_ping": True}
    if scheme == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    from sqlalchemy.exc import IntegrityError

    for attempt in range(3):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs)
        except IntegrityError:  # two processes creating Optuna's tables in an empty database at once
            time.sleep(1.0 + attempt)
        except Exception as err:  # refused, unknown host, bad password, missing driver
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise StorageUnavailable(f"Optuna storage {redact(url)} cannot be reached ({reason[:300]})") from None
    raise StorageUnavailable(f"Optuna storage {redact(url)}: its tables could not be created")


def open_storage(url: str):
    """An Optuna storage for ``url``; an unreachable one fails here, before any trial exists."""
    if not url:
        raise ConfigError("--storage", url, "a journal file path or a database URL")
    return _journal(url) if is_journal(url) else _rdb(url)


@contextlib.contextmanager
def _advisory_lock(url: str, name: str) -> Iterator[None]:
    """A PostgreSQL session advisory lock: shared by every host, released if the process dies."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    key = int.from_bytes(hashlib.sha256(f"aplab.study:{name}".encode()).digest()[:8], "big", signed=True)
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def storage_lock(url: str, name: str = "") -> contextlib.AbstractContextManager[None]:
    """An exclusive lock among all processes sharing the storage of study ``name``.

    Held while a process queues points, recovers stale trials or claims a trial, so that two
    processes never queue the same point twice nor overshoot a trial budget. A journal or SQLite
    file gets a lock file beside it (one host); PostgreSQL an advisory lock (every host); other
    databases none (claims stay atomic; only a budget could be overshot by a trial).
    """
    if is_journal(url):
        path = Path(url).expanduser()
    elif url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):]).expanduser()
    elif database_of(url) == "postgresql":
        return _advisory_lock(url, name)
    else:
        return contextlib.nullcontext()
    return file_lock(path.with_name(path.name + ".aplab-lock"))


__all__ = ["ENV_STORAGE", "JOURNAL_NAME", "StorageUnavailable", "default_storage", "is_journal", "open_storage",
           "redact", "storage_lock"]
