"""Optuna study callbacks: one progress line per trial, and a stop on repeated failures."""

from __future__ import annotations

import logging

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config.objectives import values_text
from search.study.front import curve_of, is_multi, pareto_numbers
from search.study.names import Attr
from search.study.samplers import PRUNERS

__all__ = ["FailureGuard", "ProgressLine"]


class ProgressLine:
    """``trial 3  COMPLETE  value=0.9123  best=0.9301 (trial 1)  12.3s``"""

    def __init__(self, log: logging.Logger, prefix: str = "") -> None:
        self.log, self.prefix = log, prefix

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        value = _values(trial)
        if trial.state == TrialState.PRUNED:
            value = _why_pruned(study, trial)
        if trial.state == TrialState.FAIL:
            value = str(trial.user_attrs.get(Attr.ERROR, "failed"))
        best = _best(study)
        self.log.info(
            f"{self.prefix}trial {trial.number:>3}  {trial.state.name:<8}  {value:<34}  "
            f"{best}  {seconds:.1f}s"
        )


def _values(trial: FrozenTrial) -> str:
    if not trial.values:
        return ""
    if len(trial.values) == 1:
        return f"value={trial.values[0]:.4f}"
    return f"values={values_text(trial.values)}"


def _best(study: optuna.Study) -> str:
    """``best=0.9301 (trial 1)``; of several objectives, the size of the Pareto front."""
    if is_multi(study):
        front = len(pareto_numbers(study))
        return f"front={front} trial{'s' if front != 1 else ''}" if front else "front=-"
    try:
        return f"best={study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        return "best=-"


def _why_pruned(study: optuna.Study, trial: FrozenTrial) -> str:
    """``stuck at chance``, ``diverged`` or ``pruned by <pruner>``, and after which epoch
    (counted from 1, as Keras prints them)."""
    diagnosis = trial.user_attrs.get(Attr.DIAGNOSIS)
    if diagnosis:
        reason = str(diagnosis).replace("_", " ")
    else:
        names = {cls: name for name, cls in PRUNERS.items()}
        reason = f"pruned by {names.get(type(study.pruner), type(study.pruner).__name__)}"
    curve = curve_of(trial)
    if not curve:
        return reason
    step = max(curve)  # 0-based, as Keras and MLflow count steps
    return f"{reason} after epoch {step + 1} ({curve[step]:.4f})"


class FailureGuard:
    """Says stop (``message``) after ``max_failures`` failed trials in a row (a broken space)."""

    def __init__(self, max_failures: int) -> None:
        self.max_failures = max_failures
        self.in_a_row = 0
        self.message = ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.in_a_row = self.in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.in_a_row >= self.max_failures:
            self.message = (
                f"stopped after {self.in_a_row} failed trials in a row (last: "
                f"{trial.user_attrs.get(Attr.ERROR, 'see the MLflow run')}); "
                "fix the config or space, "
                "or raise max_failures"
            )
