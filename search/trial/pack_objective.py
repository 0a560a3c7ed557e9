"""The objective of a pack of trials (``pack=K``): K asked trials opened as the one-trial
objective opens one (sampled, run open), trained together (``search.trial.packed``), each
closed as alone as soon as it ends, while the others train on: its run with its epochs,
metrics, outcome and kept model.

Each trial's value (values, of several objectives) or the exception that ended it goes to
``tell`` (the trial loop tells Optuna, as the one-trial loop does) when its run is closed;
so the sampler and the study's best see it before the pack ends. An interrupt (Ctrl-C,
SIGTERM) ends every trial of the pack not told yet (runs KILLED) and propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna
from omegaconf import DictConfig

from search.cli.signals import held, interruptible
from search.config.space import ParamSpec
from search.data.splits import Splits
from search.study.names import Attr
from search.tracking.tracker import StudyTracker
from search.trial.fit import FitResult
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
Tell = Callable[[int, Outcome], None]  # the k-th trial's end
PackObjective = Callable[[Sequence[optuna.Trial], Tell], None]


def make_pack_objective(
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    tracker: StudyTracker,
    revision: int = 0,
) -> PackObjective:
    def objective(trials: Sequence[optuna.Trial], tell: Tell) -> None:
        with released_graphs():
            _run_pack(trials, tell, cfg, specs, splits, tracker, revision)

    return objective


def _run_pack(
    trials: Sequence[optuna.Trial],
    tell: Tell,
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    tracker: StudyTracker,
    revision: int,
) -> None:
    opened: list[OpenTrial] = []
    closed: set[int] = set()

    def done(k: int, result: FitResult | BaseException) -> None:
        with held():  # its run closed and its trial told, not cut in two by an interrupt
            outcome: Outcome
            if isinstance(result, BaseException):
                outcome = result
            else:
                try:
                    outcome = end_completed(opened[k], splits, result)
                except Exception as exc:  # its model or run could not be kept: it failed
                    outcome = exc
            if isinstance(outcome, BaseException):
                end_failed(opened[k], outcome)
            closed.add(k)
            tell(k, outcome)

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
            fit_packed(entries, splits, done)
    except BaseException as exc:
        for k, one in enumerate(opened):
            if k not in closed:
                end_failed(one, exc)
        raise
