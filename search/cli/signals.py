"""Ctrl-C and SIGTERM end a worker the same way: the running trial is closed, then exit.

The first signal raises in the main thread (``KeyboardInterrupt`` or ``Terminated``); the
ones after it are ignored, so a second Ctrl-C (or the terminal's SIGINT reaching a worker
that its parent also forwards) cannot cut the trial's clean-up short. Python drops an
exception raised while it runs a finalizer or weakref callback ("Exception ignored
in ..."), so the signal is also remembered: the trial loop and the epoch callback raise it
with ``raise_pending``. A process that only waits for workers forwards the signal to them
instead of raising.

A trial's bookkeeping (ask, open its MLflow run, tell, close the run) must not be cut in
two: an interrupt there left a trial RUNNING for ever or a run whose state disagrees with
its trial. The trial loop therefore runs ``held``: a signal is only remembered, and raised
where the objective enters its ``interruptible`` part (training), or at the loop's next turn.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from types import FrameType
from typing import Any

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "Terminated",
    "exit_code",
    "handled",
    "held",
    "install_handlers",
    "interruptible",
    "raise_pending",
    "received",
]

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


class Terminated(KeyboardInterrupt):
    """SIGTERM: handled like Ctrl-C (the running trial is closed), exit code 143."""


_received: list[int] = []
_raising: list[bool] = []  # innermost region last: False = held, True = interruptible


def install_handlers(forward: Callable[[int], None] | None = None) -> None:
    """Raise on the first SIGINT/SIGTERM, or with ``forward`` pass it on and go on waiting."""
    _received.clear()
    sys.unraisablehook = _quiet_dropped_interrupts
    handler = partial(_on_signal, forward)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@contextmanager
def handled() -> Iterator[None]:
    """``install_handlers`` for one block (a call from a notebook): the kernel's own
    handlers and hook come back afterwards, and no signal is left remembered."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    hook = sys.unraisablehook
    install_handlers()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
        sys.unraisablehook = hook
        _received.clear()


def _on_signal(forward: Callable[[int], None] | None, signum: int, frame: FrameType | None) -> None:
    if _received:
        return
    _received.append(signum)
    if forward is not None:
        forward(signum)
        return
    if _raising and not _raising[-1]:
        return  # held: raised at the next ``interruptible`` or ``raise_pending``
    raise _exception(signum)


@contextmanager
def held() -> Iterator[None]:
    """A signal that comes in this block is remembered, not raised."""
    _raising.append(False)
    try:
        yield
    finally:
        _raising.pop()


@contextmanager
def interruptible() -> Iterator[None]:
    """A signal that came before (held) or comes in this block raises here."""
    _raising.append(True)
    try:
        raise_pending()
        yield
    finally:
        _raising.pop()


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
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
