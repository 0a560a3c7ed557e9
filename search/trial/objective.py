"""The Optuna objective: one trial = sample, track, train, report.

The trial's MLflow run opens when it starts and is closed in every case, with what
``search.study.outcome`` makes of the trial's end: a returned value (COMPLETE), a pruning
or a diagnosis (stuck at chance, diverged: PRUNED), an error (FAIL) or an interrupt
(FAIL, the run KILLED). The exception goes on to the trial loop, which tells Optuna the
same state.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import optuna
import psutil
from omegaconf import DictConfig, OmegaConf

from search.cli.signals import interruptible
from search.config.compose import as_dict, resolved_copy
from search.config.space import ParamSpec, apply_params, sample_params
from search.config.task import Task, task_of
from search.data.splits import Splits
from search.study.names import Attr, Tag
from search.study.outcome import Outcome, outcome_of
from search.tracking.models import KeptModel
from search.tracking.runs import TrialRun
from search.tracking.tracker import StudyTracker
from search.trial.callbacks import EpochRecorder, PruningCallback
from search.trial.fit import FitResult, fit_config
from search.trial.graphs import released_graphs
from search.trial.history import save_history, summarize_epochs
from search.trial.keep import kept_model
from search.trial.lr_range import resolve_auto_lr, write_finding

__all__ = [
    "LR_KEY",
    "OpenTrial",
    "end_completed",
    "end_failed",
    "make_objective",
    "open_trial",
    "start_training",
    "trial_config",
]

log = logging.getLogger("search")
LR_KEY = "optimizer.learning_rate"
PACK_SEED = "train.pack_seed"  # set when the trial trains in a pack (``search.trial.packed``)
PACK_EPOCH = "train.pack_epoch"  # with it: the pack's epoch the trial started at,
PACK_PLACES = ("train.pack_place", "train.pack_places")  # the place it had, of how many


def trial_config(
    cfg: DictConfig, trial: optuna.trial.BaseTrial, specs: list[ParamSpec]
) -> tuple[DictConfig, dict[str, Any]]:
    """The trial's resolved config: sampled values applied, ``seed`` = base seed + trial number."""
    sampled = sample_params(trial, specs, cfg)
    out = apply_params(resolved_copy(cfg), sampled)
    out.seed = int(cfg.seed) + int(trial.number)
    return out, sampled


def make_objective(
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    tracker: StudyTracker,
    revision: int = 0,
) -> Callable[[optuna.Trial], float | tuple[float, ...]]:
    """The objective of the study's ``revision`` (``search.study.revisions``): the value
    of a trial, or its values on the study's objectives when it has several."""

    def objective(trial: optuna.Trial) -> float | tuple[float, ...]:
        trial.set_user_attr(Attr.REVISION, revision)
        with released_graphs():  # the trial's TensorFlow graphs go when it ends
            return _run_trial(trial, cfg, specs, splits, tracker, revision)

    return objective


@dataclass
class OpenTrial:
    """A trial sampled, its config resolved and its MLflow run open."""

    trial: optuna.Trial
    config: DictConfig
    sampled: dict[str, Any]
    run: TrialRun
    recorder: EpochRecorder
    pruning: list[keras.callbacks.Callback]
    auto_lr: bool


def open_trial(
    trial: optuna.Trial,
    cfg: DictConfig,
    specs: list[ParamSpec],
    tracker: StudyTracker,
    revision: int,
) -> OpenTrial:
    """Sample the trial's config and open its MLflow run (its epochs go to the run)."""
    config, sampled = trial_config(cfg, trial, specs)
    task = task_of(cfg)
    auto_lr = str(config.optimizer.learning_rate) == "auto"
    warm = trial.user_attrs.get(Attr.WARM_START)  # an enqueued trial's source
    run = tracker.start_trial(
        trial.number,
        sampled,
        as_dict(config),
        omit=(PACK_SEED, PACK_EPOCH, *PACK_PLACES, *([LR_KEY] if auto_lr else [])),  # once trained
        revision=revision,
        extra={Tag.WARM_START: str(warm)} if warm else None,
    )
    recorder = EpochRecorder(sink=run.log_epoch)
    # Optuna neither takes reports nor prunes in a multi-objective study
    pruning = [] if task.multi else [PruningCallback(trial, task.monitor, int(cfg.train.epochs))]
    return OpenTrial(trial, config, sampled, run, recorder, list(pruning), auto_lr)


def start_training(opened: OpenTrial) -> None:
    """What the trial records before it trains (inside the block that closes its run)."""
    trial, run = opened.trial, opened.run
    if run.run_id:  # empty while the MLflow store is unreachable (sync back-fills)
        trial.set_user_attr(Attr.MLFLOW_RUN_ID, run.run_id)
    trial.set_user_attr(Attr.CONFIG, as_dict(opened.config))


def _run_trial(
    trial: optuna.Trial,
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    tracker: StudyTracker,
    revision: int,
) -> float | tuple[float, ...]:
    opened = open_trial(trial, cfg, specs, tracker, revision)
    try:  # from here on, whatever happens closes the run
        start_training(opened)
        with interruptible():  # a Ctrl-C held since the ask raises here (search.cli.signals)
            source = "search" if LR_KEY in opened.sampled else "config"
            if opened.auto_lr:
                opened.config = _find_lr(opened.config, splits, opened.run, trial)
                source = "lr_find"
            opened.run.log_params({f"{LR_KEY}_source": source})
            result = fit_config(opened.config, splits, opened.recorder, callbacks=opened.pruning)
    except BaseException as exc:
        end_failed(opened, exc)
        raise
    return end_completed(opened, splits, result)


def end_failed(opened: OpenTrial, exc: BaseException) -> None:
    """Close a trial that ``exc`` ended (pruned, diagnosed, failed, interrupted)."""
    outcome = outcome_of(exc)
    task = task_of(opened.config)
    if outcome.diagnosis and opened.pruning:  # the callback did not see the deciding epoch
        _report_last_epoch(opened.trial, opened.recorder, task)
    try:
        _end(opened.trial, opened.run, outcome, opened.recorder, opened.config)
    except Exception as close_error:  # never hide how the trial ended
        log.warning(f"trial {opened.trial.number}: could not close its MLflow run ({close_error})")


def end_completed(
    opened: OpenTrial, splits: Splits, result: FitResult
) -> float | tuple[float, ...]:
    """Close a trial that trained to its end; its value (its values, of several)."""
    kept = kept_model(opened.trial, opened.config, splits, result, opened.sampled)
    _end(opened.trial, opened.run, outcome_of(None), opened.recorder, opened.config, result, kept)
    return result.values if task_of(opened.config).multi else result.value


def _find_lr(config: DictConfig, splits: Splits, run: TrialRun, trial: optuna.Trial) -> DictConfig:
    """Run the LR range test for this trial's model; log the rate, its cost and the plot."""
    config, finding = resolve_auto_lr(config, splits)
    assert finding is not None
    run.log_params({LR_KEY: finding.suggested_lr})
    trial.set_user_attr(Attr.CONFIG, as_dict(config))  # export gets the concrete rate
    trial.set_user_attr(Attr.LR_FIND_SECONDS, finding.seconds)
    with tempfile.TemporaryDirectory(prefix="search-lrfind-") as tmp:
        write_finding(finding, Path(tmp), f"trial {trial.number}: LR range test")
        run.log_files(Path(tmp))
    run.log_metrics({"lr_find_seconds": finding.seconds})
    return config


def _report_last_epoch(trial: optuna.Trial, recorder: EpochRecorder, task: Task) -> None:
    """Report the validation figure of the epoch a diagnosis stopped (stuck at chance,
    diverged: raised before the pruning callback saw that epoch) to Optuna; a figure that
    is NaN counts as the worst the others reached (0 for a maximized figure with none)."""
    if recorder.rows:
        row = recorder.rows[-1]
        value = row.get(task.monitor, math.nan)
        if not math.isfinite(value):
            seen = [
                r[task.monitor]
                for r in recorder.rows
                if math.isfinite(r.get(task.monitor, math.nan))
            ]
            value = (min(seen) if task.maximize else max(seen)) if seen else task.worst
        with warnings.catch_warnings():  # "already reported": the pruning callback saw it
            warnings.simplefilter("ignore", UserWarning)
            trial.report(value, step=int(row["epoch"]))


def _finite(value: float | None) -> float | None:
    """A figure as JSON stores it: NaN and inf as null."""
    return value if value is not None and math.isfinite(value) else None


def _rss_mb() -> float:
    """Resident memory of this worker process, MiB."""
    return float(psutil.Process().memory_info().rss) / 2**20


def _end(
    trial: optuna.Trial,
    run: TrialRun,
    outcome: Outcome,
    recorder: EpochRecorder,
    config: DictConfig,
    result: FitResult | None = None,
    kept: KeptModel | None = None,
) -> None:
    """Record the outcome on the trial (final metrics in one user attr: one storage write)
    and close its MLflow run with the same metrics, the outcome's tags, the artifacts and
    the ``kept`` model (its id recorded on the trial)."""
    task = task_of(config)
    if result is not None:
        metrics = result.metrics
    else:
        metrics = summarize_epochs(recorder.rows, task.monitor, maximize=task.maximize)
    metrics = {**metrics, "worker_rss_mb": _rss_mb()}  # a leak shows as a rising line
    attrs = {Attr.METRICS: metrics, **outcome.user_attrs()}
    pack_seed = OmegaConf.select(config, PACK_SEED)
    if pack_seed is not None:  # trained in a pack: its export re-trains as it trained
        attrs[Attr.CONFIG] = as_dict(config)
        recorded = (PACK_EPOCH, *PACK_PLACES)
        run.log_params({PACK_SEED: pack_seed} | {k: OmegaConf.select(config, k) for k in recorded})
    if task.multi:  # Optuna takes no reports: the curve the plots and report draw
        attrs[Attr.CURVE] = [_finite(row.get(task.monitor)) for row in recorder.rows]
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    with tempfile.TemporaryDirectory(prefix="search-trial-") as tmp:
        out = Path(tmp)
        OmegaConf.save(config, out / "config.yaml")
        for name, table in (result.tables if result else {}).items():
            table.to_csv(out / f"{name}.csv", index=False)
        if recorder.rows:
            title = f"{config.study_name} trial {trial.number} ({outcome.state.name})"
            save_history(recorder.rows, out, title=title, metric=task.monitor)
        model_id = run.finish(outcome, metrics=metrics, artifacts_dir=out, kept=kept)
    if model_id:
        trial.set_user_attr(Attr.MODEL_ID, model_id)
