"""``python -m search.run study=<name> [key=value ...]``: run or continue an Optuna study.

Reads top to bottom: compose the config (Hydra), check the space, load the data once,
open the Optuna study and the MLflow parent run, fail the trials of workers that died
and bring MLflow up to date with the study, run trials (here, or in ``workers`` worker
processes) until the study has ``n_trials`` finished trials, then write the study's
summary to the parent run.
"""

from __future__ import annotations

import contextlib
import logging
import time

import hydra
import optuna
from omegaconf import DictConfig

from search.checks import check_config
from search.cli import entry, guarded
from search.data import splits_from_config
from search.errors import HarnessError
from search.orphans import reap_orphans
from search.pool import WorkerEnd, run_pool
from search.space import parse_space, validate_space_keys
from search.storage import count_finished, make_pruner, make_sampler, open_storage, open_study
from search.summary import publish_summary
from search.sync import sync_study
from search.tracking import StudyTracker
from search.training import preflight
from search.worker import work

log = logging.getLogger("search")


def run_study(cfg: DictConfig) -> optuna.Study:
    check_config(cfg)
    specs = parse_space(cfg.space)
    validate_space_keys(specs, cfg)
    sampler, pruner = make_sampler(cfg, specs, seed=int(cfg.seed)), make_pruner(cfg)
    splits = splits_from_config(cfg.dataset)
    preflight(cfg, splits)
    log.info(
        f"study {cfg.study_name}: {len(specs)} searched params, "
        f"data {splits.name} ({splits.sizes()})"
    )

    tracker = StudyTracker(str(cfg.tracking_uri), str(cfg.artifact_root), str(cfg.study_name))
    tracker.check()
    storage = open_storage(str(cfg.storage), heartbeat_interval=int(cfg.heartbeat_interval))
    study = open_study(cfg, specs, storage, sampler, pruner)
    reap_orphans(study)
    done = count_finished(study)
    if done >= int(cfg.n_trials):
        log.info(
            f"study {cfg.study_name} already has {done} finished trials (n_trials={cfg.n_trials}); "
            "raise n_trials to run more"
        )
        return study
    tracker.open()
    sync_study(study, tracker, str(cfg.metric))
    log.info(
        f"running {int(cfg.n_trials) - done} more trial(s) ({done} finished before); "
        f"storage {cfg.storage}, tracking {cfg.tracking_uri}"
    )

    started = time.perf_counter()
    try:
        if int(cfg.workers) == 1:
            stopped = work(cfg, specs, splits, study, tracker)
        else:
            stopped = _explain(run_pool(cfg, tracker.experiment_id, tracker.parent_run_id))
    except BaseException:
        _close_interrupted(study, tracker, str(cfg.metric))
        raise
    reap_orphans(study)  # a worker killed meanwhile
    if tracker.online:
        sync_study(study, tracker, str(cfg.metric))
    _summarize(study, tracker, cfg, time.perf_counter() - started)
    if stopped:
        raise HarnessError(stopped)
    return study


def _close_interrupted(study: optuna.Study, tracker: StudyTracker, metric: str) -> None:
    """A signal that lands before a trial's objective could catch it (between ask and the
    fit) leaves that trial's run RUNNING: close it with the trial's state, then the parent."""
    if tracker.online:
        with contextlib.suppress(Exception):  # the interrupt is what the user must see
            sync_study(study, tracker, metric)
    tracker.close_parent("KILLED")


def _explain(ends: list[WorkerEnd]) -> str:
    """One reason the pool stopped early, or ""; a killed worker is said, not an error."""
    for end in ends:
        if end.exitcode < 0:
            log.warning(
                f"worker {end.index} was killed (signal {-end.exitcode}); its trial is marked "
                "failed; run the same command again to top the study up"
            )
    return next((end.message for end in ends if end.message), "")


def _summarize(study: optuna.Study, tracker: StudyTracker, cfg: DictConfig, seconds: float) -> None:
    metrics = publish_summary(study, tracker)
    finished = count_finished(study)
    if "best_value" in metrics:
        best = study.best_trial
        log.info(
            f"done in {seconds:.0f}s: {finished} finished trials, best {cfg.metric} "
            f"{metrics['best_value']:.4f} (trial {best.number})"
        )
    else:
        log.info(f"done in {seconds:.0f}s: no trial completed")
    if not tracker.online:
        log.info(f"MLflow was unreachable: python -m search.sync study={cfg.study_name}")
    log.info(f"browse: {_ui_command(cfg)}")
    log.info(f"export: python -m search.export study={cfg.study_name}")


def _ui_command(cfg: DictConfig) -> str:
    """``python -m search.ui`` with the keys that differ from the defaults."""
    if str(cfg.tracking_uri).startswith("http"):
        return f"open {cfg.tracking_uri}"
    extra = "" if str(cfg.mlruns_dir) == "mlruns" else f" mlruns_dir={cfg.mlruns_dir}"
    if str(cfg.tracking_uri) != f"sqlite:///{cfg.mlruns_dir}/mlflow.db":
        extra += f" tracking_uri={cfg.tracking_uri} artifact_root={cfg.artifact_root}"
    return f"python -m search.ui{extra}"


@hydra.main(version_base="1.3", config_path="../studies", config_name="run")
def main(cfg: DictConfig) -> None:
    guarded(lambda: run_study(cfg), resume_hint="run the same command again to continue")


if __name__ == "__main__":
    entry(main, "run")
