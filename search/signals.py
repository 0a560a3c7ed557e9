"""Ctrl-C and SIGTERM end a worker the same way: the running trial is closed, then exit.

The first signal raises in the main thread (``KeyboardInterrupt`` or ``Terminated``); the
ones after it are ignored, so a second Ctrl-C (or the terminal's SIGINT reaching a worker
that its parent also forwards) cannot cut the trial's clean-up short. Python drops an
exception raised while it runs a finalizer or weakref callback ("Exception ignored
in ..."), so the signal is also remembered: the trial loop and the epoch callback raise it
with ``raise_pending``. A process that only waits for workers forwards the signal to them
instead of raising.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

from search.errors import Terminated

__all__ = ["exit_code", "install_handlers", "raise_pending", "received"]

_received: list[int] = []


def install_handlers(forward: Callable[[int], None] | None = None) -> None:
    """Raise on the first SIGINT/SIGTERM, or with ``forward`` pass it on and go on waiting."""
    _received.clear()
    sys.unraisablehook = _quiet_dropped_interrupts
    handler = partial(_on_signal, forward)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _on_signal(forward: Callable[[int], None] | None, signum: int, frame: FrameType | None) -> None:
    if _received:
        return
    _received.append(signum)
    if forward is not None:
        forward(signum)
        return
    raise _exception(signum)


def _quiet_dropped_interrupts(unraisable: Any) -> None:
    """No "Exception ignored in ..." traceback for an interrupt ``raise_pending`` delivers."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _received:
        return
    sys.__unraisablehook__(unraisable)


def received() -> bool:
    return bool(_received)


def raise_pending() -> None:
    """Raise the interrupt a signal asked for, if its first raise went missing."""
    if _received:
        raise _exception(_received[0])


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def exit_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
