"""``python -m search.run study=<name> [key=value ...]``: run or continue an Optuna study.

Reads top to bottom: compose the config (Hydra), check the space, load the data once,
open the Optuna study and the MLflow parent run, optimise until the study has
``n_trials`` finished trials, then write the study's summary to the parent run.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import hydra
import optuna
from omegaconf import DictConfig

from search.checks import check_config
from search.cli import entry, guarded
from search.data import splits_from_config
from search.errors import HarnessError
from search.objective import make_objective
from search.progress import FailureGuard, ProgressLine
from search.space import parse_space, validate_space_keys
from search.storage import (
    FINISHED,
    count_finished,
    make_pruner,
    make_sampler,
    open_storage,
    open_study,
)
from search.summary import study_summary, trials_frame
from search.tracking import StudyTracker
from search.training import preflight

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

    storage = open_storage(str(cfg.storage))
    tracker = StudyTracker(str(cfg.tracking_uri), str(cfg.artifact_root), str(cfg.study_name))
    tracker.check()
    study = open_study(cfg, specs, storage, sampler, pruner)
    done = count_finished(study)
    if done >= int(cfg.n_trials):
        log.info(
            f"study {cfg.study_name} already has {done} finished trials (n_trials={cfg.n_trials}); "
            "raise n_trials to run more"
        )
        return study
    tracker.open()
    log.info(
        f"running {int(cfg.n_trials) - done} more trial(s) ({done} finished before); "
        f"storage {cfg.storage}, tracking {cfg.tracking_uri}"
    )

    guard = FailureGuard(int(cfg.max_failures))
    started = time.perf_counter()
    try:
        study.optimize(
            make_objective(cfg, specs, splits, tracker),
            timeout=cfg.timeout,
            callbacks=[
                optuna.study.MaxTrialsCallback(int(cfg.n_trials), states=FINISHED),
                ProgressLine(log),
                guard,
            ],
            gc_after_trial=True,
        )
    except BaseException:
        tracker.close_parent("KILLED")
        raise
    _summarize(study, tracker, cfg, time.perf_counter() - started)
    if guard.message:
        raise HarnessError(guard.message)
    return study


def _summarize(study: optuna.Study, tracker: StudyTracker, cfg: DictConfig, seconds: float) -> None:
    metrics, tags = study_summary(study)
    with tempfile.TemporaryDirectory(prefix="search-study-") as tmp:
        csv = Path(tmp) / "trials.csv"
        trials_frame(study).to_csv(csv, index=False)
        tracker.summarize(metrics, tags, [csv])
    finished = count_finished(study)
    if "best_value" in metrics:
        log.info(
            f"done in {seconds:.0f}s: {finished} finished trials, best {cfg.metric} "
            f"{metrics['best_value']:.4f} (trial {tags['best_trial']})"
        )
    else:
        log.info(f"done in {seconds:.0f}s: no trial completed")
    log.info(f"browse: mlflow ui --backend-store-uri {cfg.tracking_uri}")
    log.info(f"export: python -m search.export study={cfg.study_name}")


@hydra.main(version_base="1.3", config_path="../studies", config_name="run")
def main(cfg: DictConfig) -> None:
    guarded(lambda: run_study(cfg), resume_hint="run the same command again to continue")


if __name__ == "__main__":
    entry(main)
