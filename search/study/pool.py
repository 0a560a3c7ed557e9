"""``workers=N``: N worker processes on this machine share one study.

Processes, not threads (Keras and the GIL), started with ``spawn`` (TensorFlow does not
survive a fork). Each runs ``target`` (``search.trial.worker.work_in_process``: it gives
TensorFlow cores / N threads, ``threads_per_worker``, so N workers do not oversubscribe the
machine, loads the data, opens the study through the storage, the journal file by default,
safe for parallel writers, and runs the trial loop). Ctrl-C reaches every worker from the
terminal; a SIGTERM or SIGINT sent to this process alone is forwarded. Each worker closes
its running trial and sends back how it ended.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing.process import BaseProcess
from typing import Any

from omegaconf import DictConfig, OmegaConf

from search.cli.command import setup_logging
from search.cli.errors import EXIT_USAGE, HarnessError
from search.cli.signals import exit_code, install_handlers, raise_pending
from search.config.compose import as_dict, resolved_copy

__all__ = ["WorkerEnd", "WorkerTarget", "run_pool", "threads_per_worker"]

# what a worker process runs: (config, worker index, worker count, experiment id, parent run
# id) -> why it stopped early ("" if it did not)
WorkerTarget = Callable[[DictConfig, int, int, str, str], str]
log = logging.getLogger("search")


@dataclass(frozen=True)
class WorkerEnd:
    index: int
    exitcode: int
    message: str = ""


def threads_per_worker(workers: int) -> int:
    return max(1, len(os.sched_getaffinity(0)) // workers)


def run_pool(
    cfg: DictConfig, target: WorkerTarget, experiment_id: str, parent_run_id: str
) -> list[WorkerEnd]:
    """Start ``cfg.workers`` processes running ``target``, wait for all of them, say how
    each ended."""
    workers = int(cfg.workers)
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.SimpleQueue()
    config = as_dict(resolved_copy(cfg))
    processes = [
        ctx.Process(
            target=_worker_main,
            args=(target, config, index, workers, experiment_id, parent_run_id, messages),
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
    target: WorkerTarget,
    config: dict[str, Any],
    index: int,
    workers: int,
    experiment_id: str,
    parent_run_id: str,
    messages: Any,
) -> None:
    install_handlers()
    setup_logging()
    try:
        message = target(OmegaConf.create(config), index, workers, experiment_id, parent_run_id)
    except HarnessError as exc:
        message = str(exc)
    except KeyboardInterrupt as exc:
        sys.exit(exit_code(exc))
    if message:
        messages.put((index, message))
        sys.exit(EXIT_USAGE)
