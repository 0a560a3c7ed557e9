"""A worker: this package's objective on the study's trial loop, until the study has enough.

``work`` runs in the ``search.run`` process (``workers=1``) or in each worker process of
``search.study.pool`` (``work_in_process``: it opens the data, the study and the MLflow
runs of the main process first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna
from omegaconf import DictConfig, OmegaConf

from search.cli.errors import first_line
from search.config.devices import plan_devices
from search.config.packing import ask_size, pack_size, why_alone
from search.config.space import ParamSpec, parse_space
from search.data.load import splits_of
from search.data.splits import Splits
from search.study.loop import StopRule, run_trials, settle_heap
from search.study.pool import threads_per_worker
from search.study.progress import FailureGuard, ProgressLine
from search.study.revisions import settle_revision
from search.study.samplers import make_pruner, use_sampler
from search.study.storage import open_storage
from search.tracking.tracker import StudyTracker
from search.trial.devices import use_gpu, visible_gpus
from search.trial.objective import make_objective
from search.trial.pack_objective import make_pack_objective
from search.trial.packed import packs_pay

__all__ = ["work", "work_in_process"]

log = logging.getLogger("search")


def work(
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    study: optuna.Study,
    tracker: StudyTracker,
    prefix: str = "",
    revision: int = 0,
    workers: int = 1,
) -> str:
    """Run this worker's share of the study (its trials are of ``revision``: see
    ``search.study.revisions``; ``workers`` share it); returns why it stopped early ("" if
    it did not)."""
    guard = FailureGuard(int(cfg.max_failures))
    settle_heap()
    run_trials(
        study,
        make_objective(cfg, specs, splits, tracker, revision),
        StopRule(int(cfg.n_trials), cfg.timeout, workers=workers),
        callbacks=[ProgressLine(logging.getLogger("search"), prefix), guard],
        should_stop=lambda: bool(guard.message),
        pack=_pack(cfg, prefix),
        pack_objective=make_pack_objective(cfg, specs, splits, tracker, revision),
    )
    return guard.message


def _pack(cfg: DictConfig, prefix: str) -> int | Callable[[], int]:
    """The trials an ask takes at most (``search.config.packing.ask_size``);
    with ``pack=auto``, asked before each ask: 1 once a model without a fused form showed
    up (``packs_pay``)."""
    size = _pack_size(cfg, prefix)
    asks = ask_size(cfg)
    if cfg.pack != "auto" or size == 1:
        return asks
    return lambda: asks if packs_pay() else 1


def _pack_size(cfg: DictConfig, prefix: str) -> int:
    """The pack's size (``search.config.packing``); a number asked for where trials cannot
    train together is ignored, said once."""
    asked, why = cfg.pack, why_alone(cfg)
    if asked != "auto" and int(asked) > 1 and why and (not prefix or prefix.startswith("[w0]")):
        log.warning(f"note: pack={asked} is ignored: {why}")
    return pack_size(cfg)


def work_in_process(
    cfg: DictConfig, index: int, workers: int, experiment_id: str, parent_run_id: str
) -> str:
    """Worker ``index`` of ``workers``: its share of the cores, its own data, study and
    tracker on the shared stores."""
    use_gpu(plan_devices(cfg.devices, workers, visible_gpus()).gpu_of(index))  # before TF starts
    _limit_threads(threads_per_worker(workers))
    specs = parse_space(OmegaConf.select(cfg, "space"))
    splits = splits_of(cfg)
    storage = open_storage(str(cfg.storage), heartbeat_interval=int(cfg.heartbeat_interval))
    study = optuna.load_study(study_name=str(cfg.study_name), storage=storage)
    use_sampler(study, cfg, specs, worker=index)  # workers draw different trials
    study.pruner = make_pruner(cfg)
    tracker = StudyTracker.from_config(cfg)
    tracker.attach(experiment_id, parent_run_id)
    # the revision the main process settled
    revision = settle_revision(study, cfg, accept=True, contents=splits.contents)
    try:
        prefix = f"[w{index}] "
        return work(cfg, specs, splits, study, tracker, prefix, revision, workers)
    except optuna.exceptions.StorageInternalError as exc:
        return f"worker {index}: storage error ({first_line(exc)})"


def _limit_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
