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
from pathlib import Path
from typing import Any

import optuna
import psutil
from omegaconf import DictConfig, OmegaConf

from search.cli.signals import interruptible
from search.config.compose import as_dict, resolved_copy
from search.config.space import ParamSpec, apply_params, sample_params
from search.config.task import Task, task_of
from search.data.splits import Splits
from search.study.front import dominated
from search.study.names import Attr, Role, Tag
from search.study.outcome import Outcome, outcome_of
from search.tracking.models import KeptModel
from search.tracking.runs import TrialRun
from search.tracking.tracker import StudyTracker
from search.trial.callbacks import EpochRecorder, PruningCallback
from search.trial.fit import FitResult, fit_config
from search.trial.graphs import released_graphs
from search.trial.history import save_history, summarize_epochs
from search.trial.lr_range import resolve_auto_lr, write_finding

__all__ = ["LR_KEY", "make_objective", "trial_config"]

log = logging.getLogger("search")
LR_KEY = "optimizer.learning_rate"


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


def _run_trial(
    trial: optuna.Trial,
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    tracker: StudyTracker,
    revision: int,
) -> float | tuple[float, ...]:
    config, sampled = trial_config(cfg, trial, specs)
    task = task_of(cfg)
    auto_lr = str(config.optimizer.learning_rate) == "auto"
    warm = trial.user_attrs.get(Attr.WARM_START)  # an enqueued trial's source
    run = tracker.start_trial(
        trial.number,
        sampled,
        as_dict(config),
        omit=(LR_KEY,) if auto_lr else (),
        revision=revision,
        extra={Tag.WARM_START: str(warm)} if warm else None,
    )
    recorder = EpochRecorder(sink=run.log_epoch)
    # Optuna neither takes reports nor prunes in a multi-objective study
    pruning = [] if task.multi else [PruningCallback(trial, task.monitor, int(cfg.train.epochs))]
    try:  # from here on, whatever happens closes the run
        if run.run_id:  # empty while the MLflow store is unreachable (sync back-fills)
            trial.set_user_attr(Attr.MLFLOW_RUN_ID, run.run_id)
        trial.set_user_attr(Attr.CONFIG, as_dict(config))
        with interruptible():  # a Ctrl-C held since the ask raises here (search.cli.signals)
            source = "search" if LR_KEY in sampled else "config"
            if auto_lr:
                config = _find_lr(config, splits, run, trial)
                source = "lr_find"
            run.log_params({f"{LR_KEY}_source": source})
            result = fit_config(config, splits, recorder, callbacks=pruning)
    except BaseException as exc:
        outcome = outcome_of(exc)
        if outcome.diagnosis and pruning:  # the callback did not see the epoch that decided it
            _report_last_epoch(trial, recorder, task)
        try:
            _end(trial, run, outcome, recorder, config)
        except Exception as close_error:  # never hide how the trial ended
            log.warning(f"trial {trial.number}: could not close its MLflow run ({close_error})")
        raise
    kept = _kept(trial, config, splits, result, sampled)
    _end(trial, run, outcome_of(None), recorder, config, result=result, kept=kept)
    return result.values if task.multi else result.value


def _kept(
    trial: optuna.Trial,
    config: DictConfig,
    splits: Splits,
    result: FitResult,
    sampled: dict[str, Any],
) -> KeptModel | None:
    """The trial's model to keep in MLflow (``tracking.log_models``): ``all`` keeps every
    completed trial's, ``best`` one that beats every completed trial so far (of several
    objectives: one no completed trial dominates, a new member of the Pareto front); a model
    that becomes the study's best on the first objective is registered (version of the
    model named after the study)."""
    mode = str(config.tracking.log_models)
    task = task_of(config)
    best = _best_so_far(trial, result.value, task.maximize)
    front = best or (task.multi and _on_front(trial, result.values, task))
    if result.model is None or mode == "none" or (mode == "best" and not front):
        return None
    tags = {Tag.STUDY: str(config.study_name), Tag.TRIAL: str(trial.number), Tag.ROLE: Role.TRIAL}
    return KeptModel(
        result.model,
        splits.probe("val", 2)[0],
        params=sampled,
        tags=tags,
        register=str(config.study_name) if best else "",
        value=result.value,
        maximize=task.maximize,
        step=int(result.metrics.get("best_epoch", 0)),
    )


def _best_so_far(trial: optuna.Trial, value: float, maximize: bool) -> bool:
    """``value`` beats every completed trial of the study (ties keep the earlier trial)."""
    if not math.isfinite(value):
        return False
    study = getattr(trial, "study", None)  # an optuna.trial.FixedTrial has none
    if study is None:
        return True
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    values = [float(t.values[0]) for t in done if t.values]
    if not values:
        return True
    return value > max(values) if maximize else value < min(values)


def _on_front(trial: optuna.Trial, values: tuple[float, ...], task: Task) -> bool:
    """No completed trial of the study dominates ``values``."""
    if not all(math.isfinite(v) for v in values):
        return False
    study = getattr(trial, "study", None)
    if study is None:
        return True
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    others = [t.values for t in done if t.values is not None]
    return not dominated(values, others, [o.maximize for o in task.objectives])


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
