"""One process at a time sets up a local MLflow store.

MLflow creates a sqlite store's tables and runs its schema migrations the first time a
process opens it, with nothing to keep a second process from doing the same at the same
moment: two runs against a new store then fail with ``duplicate column name`` or ``table
... already exists``. :func:`exclusive_file_lock` holds an ``flock`` on a file next to the
database while the store is opened (and while a new version is compared with the champion);
the system releases it if the holder dies, and a waiter gives up after a bounded time with
an error naming the lock file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from nb2pipe.errors import Nb2PipeError
from nb2pipe.files import exclusive_lock

#: seconds to wait for another process's set-up (a fresh store's migrations take 1-10 s)
SETUP_WAIT_S = 300.0


class StoreLockError(Nb2PipeError):
    """Another process held the store's set-up lock for too long."""


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` tracking URI; None for any other URI (a
    server or a database with locking of its own, or sqlite in memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path).resolve() if path and path != ":memory:" else None


def lock_path(database: Path) -> Path:
    """``mlflow.db.lock`` beside ``mlflow.db``."""
    return database.with_name(database.name + ".lock")


def setup_lock(database: Path) -> AbstractContextManager[None]:
    """:func:`exclusive_file_lock` on ``database``'s lock file; none for a database in a
    folder this process cannot write (a read-only mount): no process can create or migrate
    the store there, only read it."""
    if database.is_file() and not os.access(database.parent, os.W_OK):
        return nullcontext()
    return exclusive_file_lock(lock_path(database))


@contextmanager
def exclusive_file_lock(
    path: Path, seconds: float = SETUP_WAIT_S, doing: str = "setting up the MLflow store"
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block; waiting
    longer than ``seconds`` for it raises :class:`StoreLockError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:
        raise StoreLockError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None

    def timed_out() -> Exception:
        return StoreLockError(
            f"another process held {path} for more than {seconds:g} s while {doing}; "
            "the lock is freed when that process ends: stop it if it hangs, then try again"
        )

    with exclusive_lock(path, seconds, timed_out):
        yield
