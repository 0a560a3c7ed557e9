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
import math
import time

import hydra
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from search import config, data, study, tracking, trial
from search.cli import (
    HarnessError,
    entry,
    guarded,
    held,
    next_command,
    raise_pending,
    searched_overrides,
)

log = logging.getLogger("search")


def run_study(cfg: DictConfig) -> optuna.Study:
    config.check_config(cfg)
    gpu = _plan_devices(cfg)
    specs = config.parse_space(OmegaConf.select(cfg, "space"))  # ~space: searches nothing
    config.validate_space_keys(specs, cfg)
    for word in searched_overrides({spec.name for spec in specs if not spec.when}):
        key = word.split("=", 1)[0].lstrip("+")
        log.warning(
            f"note: {word} has no effect: the study searches {key}; narrow space.{key} "
            f"instead, or stop searching it with ~space.{key}"
        )
    study.check_sampling(cfg, specs)
    splits = data.splits_of(cfg)
    trial.preflight(cfg, splits, specs)
    off = config.task_of(cfg).chance_off()
    if off and cfg.diagnostics.enabled:
        log.info(f"chance-level detection is off: {off}")
    log.info(
        f"study {cfg.study_name}: {len(specs)} searched params, "
        f"data {splits.name} ({splits.sizes()})"
    )

    study.check_readable(str(cfg.storage))  # a corrupt study file: before MLflow is touched
    warm = _warm_sets(cfg, specs)  # a bad source: before the study exists
    tracker = tracking.StudyTracker.from_config(cfg)
    tracker.check()
    optuna_study = study.open_study(cfg, specs)
    revision = study.settle_revision(optuna_study, cfg, bool(cfg.accept_changes), splits.contents)
    study.reap_orphans(optuna_study)
    done = study.count_finished(optuna_study)
    if study.grid_done(optuna_study) or done >= int(cfg.n_trials):
        _say_done(optuna_study, cfg, done)
        if not tracker.summarized():  # an earlier run stopped before its summary
            log.info("the study's summary in MLflow is missing (an interrupted run?): writing it")
            _finish(optuna_study, tracker, cfg, started=time.perf_counter())
        return optuna_study
    off = study.pruning_off(cfg)  # said once the run is going to train
    if off:
        log.info(f"note: {off}")
    if warm:
        added = study.enqueue_warm_start(optuna_study, warm, str(cfg.warm_start))
        held_already = f" ({len(warm) - added} in the study already)" if added < len(warm) else ""
        waiting = len(optuna_study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        left = int(cfg.n_trials) - done
        later = f"; {waiting - left} wait for a larger n_trials" if waiting > left else ""
        log.info(
            f"warm start: {added} of {len(warm)} configuration{'s' if len(warm) != 1 else ''} "
            f"from {cfg.warm_start} enqueued{held_already}{later}"
        )
    log.info(
        f"running {_trials(int(cfg.n_trials) - done, 'more')} ({done} finished before)"
        f"{f', revision {revision}' if revision else ''}; "
        f"storage {cfg.storage}, tracking {cfg.tracking_uri}"
    )

    started = time.perf_counter()
    try:  # from the parent run's opening on, an interrupt closes it (and any trial's run)
        tracker.open()
        tracking.sync_study(optuna_study, tracker, config.task_of(cfg).monitor)
        if int(cfg.workers) == 1:
            with trial.on_gpu(gpu):
                stopped = trial.work(cfg, specs, splits, optuna_study, tracker, revision=revision)
        else:
            ends = study.run_pool(
                cfg, trial.work_in_process, tracker.experiment_id, tracker.parent_run_id
            )
            stopped = _explain(ends)
        study.reap_orphans(optuna_study)  # a worker killed meanwhile
        if study.grid_done(optuna_study):
            _say_done(optuna_study, cfg, study.count_finished(optuna_study))
        _finish(optuna_study, tracker, cfg, started, standalone=False)
    except BaseException:
        _close_interrupted(optuna_study, tracker, config.task_of(cfg).monitor)
        raise
    if stopped:
        raise HarnessError(stopped)
    return optuna_study


def _plan_devices(cfg: DictConfig) -> int | None:
    """``workers`` resolved for this machine (``search.config.devices``; ``devices`` stays
    as given, each worker plans its own GPU); the GPU this process trains on (workers=1)."""
    plan = config.plan_devices(cfg.devices, cfg.workers, trial.visible_gpus())
    cfg.workers = plan.workers
    if plan.said():
        log.info(plan.said())
    return plan.gpu_of(0) if plan.workers == 1 else None


def _warm_sets(cfg: DictConfig, specs: list[config.ParamSpec]) -> list[dict[str, object]]:
    if cfg.warm_start is None:
        return []
    storage = str(cfg.storage)
    return study.warm_sets(
        str(cfg.warm_start),
        lambda: study.open_storage(storage, create=False),
        specs,
        int(cfg.warm_start_k),
    )


def _say_done(optuna_study: optuna.Study, cfg: DictConfig, done: int) -> None:
    if study.grid_done(optuna_study):
        points = len(optuna_study.get_trials(deepcopy=False))
        more = f"; n_trials={cfg.n_trials} asks for more" if int(cfg.n_trials) > points else ""
        log.info(
            f"the grid of study {cfg.study_name} is done: all its points have been tried "
            f"({points} trials{more})"
        )
    else:
        log.info(
            f"study {cfg.study_name} already has {_trials(done, 'finished')} "
            f"(n_trials={cfg.n_trials}); raise n_trials to run more"
        )


def _trials(n: int, kind: str = "") -> str:
    """``1 more trial``, ``3 finished trials``."""
    return " ".join(str(p) for p in (n, kind, "trial" if n == 1 else "trials") if p != "")


def _numbered(numbers: list[int]) -> str:
    """``trial 3``, ``trials 1, 4, 7``."""
    return f"trial{'s' if len(numbers) != 1 else ''} {', '.join(str(n) for n in numbers)}"


def _finish(
    optuna_study: optuna.Study,
    tracker: tracking.StudyTracker,
    cfg: DictConfig,
    started: float,
    standalone: bool = True,
) -> None:
    """Bring MLflow up to date with the study and write the summary on the parent run
    (interrupted, the parent run is closed KILLED: the same command writes it next time)."""
    try:
        if standalone:
            tracker.open()
        if tracker.online:
            tracking.sync_study(optuna_study, tracker, config.task_of(cfg).monitor)
        raise_pending()
        _summarize(optuna_study, tracker, cfg, time.perf_counter() - started)
    except BaseException:
        if standalone:
            _close_interrupted(optuna_study, tracker, config.task_of(cfg).monitor)
        raise


def _close_interrupted(
    optuna_study: optuna.Study, tracker: tracking.StudyTracker, metric: str
) -> None:
    """A signal that lands before a trial's objective could catch it (between ask and the
    fit), or during the summary, leaves runs RUNNING: close each trial's run with the
    trial's state, then the parent (KILLED: the next run completes its summary)."""
    with held():  # a second Ctrl-C must not leave the closing half done
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
    if tracker.online and str(cfg.tracking.log_models) != "none":  # workers raced for it
        tracker.call(
            tracking.crown, tracker.client, str(cfg.study_name), config.task_of(cfg).maximize
        )
    finished = study.count_finished(optuna_study)
    if "best_value" in metrics:
        best = study.best_trial(optuna_study)
        metric = config.task_of(cfg).monitor
        front = study.pareto_numbers(optuna_study) if study.is_multi(optuna_study) else []
        on_front = f", Pareto front: {_numbered(front)}" if front else ""
        log.info(
            f"done in {seconds:.0f}s: {_trials(finished, 'finished')}, best {metric} "
            f"{_value(study.first_value(best)):.4f} (trial {best.number}){on_front}"
        )
    else:
        log.info(f"done in {seconds:.0f}s: no trial completed")
    if not tracker.online:
        log.info(f"MLflow was unreachable: {tracker.sync_hint}")
    log.info(f"browse: {_ui_command(cfg)}")
    log.info(f"export: {next_command('search.export', cfg)}")


def _value(value: float | None) -> float:
    return math.nan if value is None else value


def _ui_command(cfg: DictConfig) -> str:
    """``python -m search.ui`` on the same stores (a tracking server: its address)."""
    if str(cfg.tracking_uri).startswith("http"):
        return f"open {cfg.tracking_uri}"
    return next_command("search.ui", cfg, study=False)


@hydra.main(version_base="1.3", config_path="studies", config_name="run")
def main(cfg: DictConfig) -> None:
    guarded(lambda: run_study(cfg), resume_hint="run the same command again to continue")


if __name__ == "__main__":
    entry(main, "run")
