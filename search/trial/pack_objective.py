"""The objective of a pack of trials (``pack=K``): K asked trials opened as the one-trial
objective opens one (sampled, run open), trained together (``search.trial.packed``), each
closed as alone: its run with its epochs, metrics, outcome and kept model.

Returns one entry per trial: its value (values, of several objectives) or the exception
that ended it, which the trial loop tells Optuna as the one-trial loop does. An interrupt
(Ctrl-C, SIGTERM) ends every trial of the pack (runs KILLED) and propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna
from omegaconf import DictConfig

from search.cli.signals import interruptible
from search.config.space import ParamSpec
from search.data.splits import Splits
from search.study.names import Attr
from search.tracking.tracker import StudyTracker
from search.trial.graphs import released_graphs
from search.trial.objective import (
    LR_KEY,
    OpenTrial,
    end_completed,
    end_failed,
    open_trial,
    start_training,
)
from search.trial.packed import fit_packed

__all__ = ["PackObjective", "make_pack_objective"]

Outcome = float | tuple[float, ...] | BaseException
PackObjective = Callable[[Sequence[optuna.Trial]], list[Outcome]]


def make_pack_objective(
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    tracker: StudyTracker,
    revision: int = 0,
) -> PackObjective:
    def objective(trials: Sequence[optuna.Trial]) -> list[Outcome]:
        with released_graphs():
            return _run_pack(trials, cfg, specs, splits, tracker, revision)

    return objective


def _run_pack(
    trials: Sequence[optuna.Trial],
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    tracker: StudyTracker,
    revision: int,
) -> list[Outcome]:
    opened: list[OpenTrial] = []
    try:  # from here on, whatever happens closes every opened run
        for trial in trials:
            trial.set_user_attr(Attr.REVISION, revision)
            opened.append(open_trial(trial, cfg, specs, tracker, revision))
            start_training(opened[-1])
        with interruptible():
            for one in opened:
                source = "search" if LR_KEY in one.sampled else "config"
                one.run.log_params({f"{LR_KEY}_source": source})
            entries = [(one.config, one.recorder, one.pruning) for one in opened]
            results = fit_packed(entries, splits)
    except BaseException as exc:
        for one in opened:
            end_failed(one, exc)
        raise
    outcomes: list[Outcome] = []
    for one, result in zip(opened, results, strict=True):
        if isinstance(result, BaseException):
            end_failed(one, result)
            outcomes.append(result)
        else:
            outcomes.append(end_completed(one, splits, result))
    return outcomes
