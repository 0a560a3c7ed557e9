"""The Optuna internals the trial loop and orphan reaping need, in one place.

Checked against Optuna 5.1.0 (the version installed; pyproject admits 5.x). None has a
public equivalent there:

- ``heartbeat``: ``study.optimize`` runs the RDB storage's heartbeat thread around each
  trial (``optuna.storages._heartbeat.get_heartbeat_thread``); our own loop must do the
  same, or a running trial of a live worker looks stale to the other machines.
- ``give_back``: a trial asked in a race goes back to WAITING, unrun
  (``BaseStorage.set_trial_state_values``; ``Study.tell`` only finishes trials).
- ``set_running_attr``: a user attr on another process's RUNNING trial (``Trial`` objects
  exist only in the process that asked; ``FrozenTrial`` keeps its id private).
- ``accept_stop`` / ``stop_asked``: ``Study.stop()`` (which ``GridSampler`` calls when its
  grid is used up, and a user's callback may call) raises unless the study's thread is
  inside ``optimize`` (``study._thread_local.in_optimize_loop``); it sets
  ``study._stop_flag``, which ``optimize`` reads after each trial.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.storages._heartbeat import BaseHeartbeatThread, get_heartbeat_thread
from optuna.trial import FrozenTrial, TrialState

__all__ = ["accept_stop", "give_back", "heartbeat", "set_running_attr", "stop_asked"]


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> BaseHeartbeatThread:
    """The storage's heartbeat for ``trial`` while the block runs (a no-op without one)."""
    return get_heartbeat_thread(trial._trial_id, study._storage)


def give_back(study: optuna.Study, trial: optuna.Trial) -> None:
    """Put an asked trial back to WAITING (the next ask pops it)."""
    study._storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)


def set_running_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


@contextmanager
def accept_stop(study: optuna.Study) -> Iterator[None]:
    """Inside the block, ``study.stop()`` asks the loop to stop, as in ``optimize``."""
    local = study._thread_local
    before = local.in_optimize_loop
    local.in_optimize_loop = True
    study._stop_flag = False
    try:
        yield
    finally:
        local.in_optimize_loop = before


def stop_asked(study: optuna.Study) -> bool:
    return bool(study._stop_flag)
