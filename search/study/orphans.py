"""Trials whose worker died (``kill -9``, a crash, a power cut) without telling the study.

Such a trial stays RUNNING in the storage for ever, and its MLflow run too. Every trial
records the worker that runs it (``worker`` user attr: host, pid, process start time).
When a run starts, RUNNING trials whose worker was a process on this host that no longer
exists are failed (``orphaned`` user attr and outcome); their MLflow runs are then closed
as KILLED by the sync (``search.tracking.sync``). Workers on other machines are watched by
the RDB storage's heartbeats instead (Optuna fails their trials once the heartbeat goes
stale).
"""

from __future__ import annotations

import logging
import os
import socket

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from search.study._optuna import set_running_attr
from search.study.names import Attr
from search.study.outcome import orphaned

__all__ = ["mark_worker", "reap_orphans", "worker_alive", "worker_id"]

log = logging.getLogger("search")


def worker_id(pid: int | None = None) -> str:
    """``host:pid:start`` of a process: the start time tells a re-used pid apart."""
    process = psutil.Process(pid or os.getpid())
    return f"{socket.gethostname()}:{process.pid}:{process.create_time():.2f}"


def mark_worker(trial: optuna.Trial) -> None:
    trial.set_user_attr(Attr.WORKER, worker_id())


def worker_alive(worker: str) -> bool | None:
    """Whether the process named by ``worker`` still runs; None when it ran on another host."""
    host, pid = _parse(worker)
    if host != socket.gethostname():
        return None
    try:
        return worker_id(pid) == worker
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _parse(worker: str) -> tuple[str, int]:
    host, pid, _started = worker.rsplit(":", 2)
    return host, int(pid)


def reap_orphans(study: optuna.Study) -> list[FrozenTrial]:
    """Fail this host's RUNNING trials whose worker process is gone; returns them."""
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(Attr.WORKER, ""))
        if not worker or worker_alive(worker) is not False:
            continue
        outcome = orphaned(f"worker {worker.rsplit(':', 1)[0]} died during the trial (killed?)")
        for key, value in {Attr.ORPHANED: True, **outcome.user_attrs()}.items():
            set_running_attr(study, trial, key, value)
        study.tell(trial.number, state=outcome.state, skip_if_finished=True)
        log.info(f"trial {trial.number}: {outcome.error}; marked failed")
        reaped.append(trial)
    return reaped
