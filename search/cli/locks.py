"""A store's first use, one process at a time.

Creating an SQLite database (MLflow's schema migrations, Optuna's tables) is not safe for
two processes at once: two ``search.run`` started together on a new ``mlruns_dir`` race
inside alembic ("Online migration expected to match one row"). The set-up runs under a
file lock (``filelock``) next to the database; the second process waits, then finds the
schema made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from search.cli.errors import HarnessError

__all__ = ["SETUP_TIMEOUT", "first_use"]

SETUP_TIMEOUT = 120.0  # s: a schema migration takes a few seconds


@contextmanager
def first_use(database: Path) -> Iterator[None]:
    """Hold ``<database>.lock`` while the block sets the database up."""
    lock = FileLock(f"{database}.lock", timeout=SETUP_TIMEOUT)
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise HarnessError(
            f"{database} is being set up by another process for over {SETUP_TIMEOUT:.0f}s "
            f"(it holds {database}.lock); stop it or wait, then run the command again"
        ) from None
    except FileExistsError:
        raise HarnessError(
            f"{database.parent} is a file, not a folder (it should hold {database.name}); "
            "move it away or give another folder (mlruns_dir=DIR)"
        ) from None
    except OSError as exc:
        raise HarnessError(
            f"cannot use {database.parent} for the store {database.name} "
            f"({exc.strerror or exc}); give a writable folder"
        ) from None
    try:
        yield
    finally:
        lock.release()
