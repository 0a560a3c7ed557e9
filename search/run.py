"""``python -m search.run study=<name> [key=value ...]``: run or continue an Optuna study.

Reads top to bottom: check the config, its search space (``search.config``) and the
sampler and pruner it names (``search.study``), load the
data once (``search.data``), build the study's model once (``search.trial``), reach the
MLflow store (``search.tracking``), open the Optuna study (``search.study``), fail the
trials of workers that died and bring MLflow up to date with the study, run trials (here,
or in ``workers`` worker processes) until the study has ``n_trials`` finished trials, then
write the study's summary to the parent run.
"""

from __future__ import annotations

import contextlib
import logging
import time

import hydra
import optuna
from omegaconf import DictConfig

from search import config, data, study, tracking, trial
from search.cli import HarnessError, entry, guarded

log = logging.getLogger("search")


def run_study(cfg: DictConfig) -> optuna.Study:
    config.check_config(cfg)
    specs = config.parse_space(cfg.space)
    config.validate_space_keys(specs, cfg)
    study.check_sampling(cfg, specs)
    splits = data.splits_from_config(cfg.dataset)
    trial.preflight(cfg, splits)
    log.info(
        f"study {cfg.study_name}: {len(specs)} searched params, "
        f"data {splits.name} ({splits.sizes()})"
    )

    tracker = tracking.StudyTracker.from_config(cfg)
    tracker.check()
    optuna_study = study.open_study(cfg, specs)
    study.reap_orphans(optuna_study)
    done = study.count_finished(optuna_study)
    if done >= int(cfg.n_trials):
        log.info(
            f"study {cfg.study_name} already has {done} finished trials (n_trials={cfg.n_trials}); "
            "raise n_trials to run more"
        )
        return optuna_study
    tracker.open()
    tracking.sync_study(optuna_study, tracker, str(cfg.metric))
    log.info(
        f"running {int(cfg.n_trials) - done} more trial(s) ({done} finished before); "
        f"storage {cfg.storage}, tracking {cfg.tracking_uri}"
    )

    started = time.perf_counter()
    try:
        if int(cfg.workers) == 1:
            stopped = trial.work(cfg, specs, splits, optuna_study, tracker)
        else:
            ends = study.run_pool(
                cfg, trial.work_in_process, tracker.experiment_id, tracker.parent_run_id
            )
            stopped = _explain(ends)
    except BaseException:
        _close_interrupted(optuna_study, tracker, str(cfg.metric))
        raise
    study.reap_orphans(optuna_study)  # a worker killed meanwhile
    if tracker.online:
        tracking.sync_study(optuna_study, tracker, str(cfg.metric))
    _summarize(optuna_study, tracker, cfg, time.perf_counter() - started)
    if stopped:
        raise HarnessError(stopped)
    return optuna_study


def _close_interrupted(
    optuna_study: optuna.Study, tracker: tracking.StudyTracker, metric: str
) -> None:
    """A signal that lands before a trial's objective could catch it (between ask and the
    fit) leaves that trial's run RUNNING: close it with the trial's state, then the parent."""
    if tracker.online:
        with contextlib.suppress(Exception):  # the interrupt is what the user must see
            tracking.sync_study(optuna_study, tracker, metric)
    tracker.close_parent("KILLED")


def _explain(ends: list[study.WorkerEnd]) -> str:
    """One reason the pool stopped early, or ""; a killed worker is said, not an error."""
    for end in ends:
        if end.exitcode < 0:
            log.warning(
                f"worker {end.index} was killed (signal {-end.exitcode}); its trial is marked "
                "failed; run the same command again to top the study up"
            )
    return next((end.message for end in ends if end.message), "")


def _summarize(
    optuna_study: optuna.Study, tracker: tracking.StudyTracker, cfg: DictConfig, seconds: float
) -> None:
    metrics = tracking.publish_summary(optuna_study, tracker)
    finished = study.count_finished(optuna_study)
    if "best_value" in metrics:
        best = optuna_study.best_trial
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
