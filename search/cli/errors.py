"""User-facing errors: one line, exit code 2, no traceback."""

from __future__ import annotations

__all__ = ["EXIT_USAGE", "DataError", "HarnessError", "SpaceError", "first_line"]

EXIT_USAGE = 2


class HarnessError(Exception):
    """A problem the user can fix (bad config, missing file, unreachable store).

    The message is printed as one line; it names the problem and how to fix it.
    """


class SpaceError(HarnessError):
    """The search space declared in a study file is malformed."""


class DataError(HarnessError):
    """A data set cannot be loaded (missing or malformed file, offline download)."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
