"""``workers=N``: N worker processes on this machine share one study.

Processes, not threads (Keras and the GIL), started with ``spawn`` (TensorFlow does not
survive a fork). Each worker loads the data, opens the study through the storage (the
journal file by default: safe for parallel writers) and runs the trial loop of
``search.worker``; TensorFlow gets cores / N threads in each, so N workers do not
oversubscribe the machine. Ctrl-C reaches every worker from the terminal; a SIGTERM or
SIGINT sent to this process alone is forwarded. Each worker closes its running trial and
sends back how it ended.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing.process import BaseProcess
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from search.config import as_dict, resolved_copy
from search.errors import HarnessError, first_line
from search.signals import exit_code, install_handlers, raise_pending

__all__ = ["WorkerEnd", "run_pool", "threads_per_worker"]

log = logging.getLogger("search")


@dataclass(frozen=True)
class WorkerEnd:
    index: int
    exitcode: int
    message: str = ""


def threads_per_worker(workers: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // workers)


def run_pool(cfg: DictConfig, experiment_id: str, parent_run_id: str) -> list[WorkerEnd]:
    """Start ``cfg.workers`` processes, wait for all of them, say how each ended."""
    workers = int(cfg.workers)
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.SimpleQueue()
    config = as_dict(resolved_copy(cfg))
    processes = [
        ctx.Process(
            target=_worker_main,
            args=(config, index, workers, experiment_id, parent_run_id, messages),
            name=f"search-worker-{index}",
        )
        for index in range(workers)
    ]
    log.info(f"{workers} workers, {threads_per_worker(workers)} TensorFlow thread(s) each")
    for process in processes:
        process.start()
    install_handlers(forward=partial(_forward, processes))
    for process in processes:
        process.join()
    raise_pending()  # the workers have closed their trials: now this process stops too
    said = {}
    while not messages.empty():
        index, text = messages.get()
        said[index] = text
    return [WorkerEnd(i, p.exitcode or 0, said.get(i, "")) for i, p in enumerate(processes)]


def _forward(processes: Sequence[BaseProcess], signum: int) -> None:
    for process in processes:
        if process.is_alive() and process.pid:
            os.kill(process.pid, signum)


def _worker_main(
    config: dict[str, Any],
    index: int,
    workers: int,
    experiment_id: str,
    parent_run_id: str,
    messages: Any,
) -> None:
    from search.cli import setup_logging

    install_handlers()
    setup_logging()
    _limit_threads(threads_per_worker(workers))
    try:
        message = _work(OmegaConf.create(config), index, experiment_id, parent_run_id)
    except HarnessError as exc:
        message = str(exc)
    except KeyboardInterrupt as exc:
        sys.exit(exit_code(exc))
    if message:
        messages.put((index, message))
        sys.exit(2)


def _limit_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _work(cfg: DictConfig, index: int, experiment_id: str, parent_run_id: str) -> str:
    from search.data import splits_from_config
    from search.space import parse_space
    from search.storage import make_pruner, make_sampler, open_storage
    from search.tracking import StudyTracker
    from search.worker import work

    specs = parse_space(cfg.space)
    splits = splits_from_config(cfg.dataset)
    storage = open_storage(str(cfg.storage), heartbeat_interval=int(cfg.heartbeat_interval))
    study = optuna.load_study(study_name=str(cfg.study_name), storage=storage)
    seed = int(cfg.seed) + len(study.trials) + 1000 * index  # workers draw different trials
    study.sampler, study.pruner = make_sampler(cfg, specs, seed=seed), make_pruner(cfg)
    tracker = StudyTracker(str(cfg.tracking_uri), str(cfg.artifact_root), str(cfg.study_name))
    tracker.attach(experiment_id, parent_run_id)
    try:
        return work(cfg, specs, splits, study, tracker, prefix=f"[w{index}] ")
    except optuna.exceptions.StorageInternalError as exc:
        return f"worker {index}: storage error ({first_line(exc)})"
