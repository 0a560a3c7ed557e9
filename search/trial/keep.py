"""The trial's model to keep in MLflow (``tracking.log_models``), and whether to register it."""

from __future__ import annotations

import math
from typing import Any

import optuna
from omegaconf import DictConfig

from search.config.task import Task, task_of
from search.data.splits import Splits
from search.study.front import dominated
from search.study.names import Role, Tag
from search.tracking.models import KeptModel
from search.trial.fit import FitResult

__all__ = ["kept_model"]


def kept_model(
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
