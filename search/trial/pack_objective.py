"""The objective of a pack of trials (``pack=K``): K asked trials opened as the one-trial
objective opens one (sampled, run open), trained together (``search.trial.packed``), each
closed as alone as soon as it ends, while the others train on: its run with its epochs,
metrics, outcome and kept model.

Each trial's value (values, of several objectives) or the exception that ended it goes to
``tell`` (the trial loop tells Optuna, as the one-trial loop does) when its run is closed;
so the sampler and the study's best see it before the pack ends. A place it frees takes a
trial asked then (``ask``: the sampler has seen the values told so far), opened the same way,
while the study wants more. An interrupt (Ctrl-C, SIGTERM) ends every trial of the pack not
told yet (runs KILLED) and propagates.
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
from search.trial.packed import PackEntry, fit_packed

__all__ = ["PackObjective", "make_pack_objective"]

Outcome = float | tuple[float, ...] | BaseException
Tell = Callable[[int, Outcome], None]  # the k-th trial's end
Ask = Callable[[], optuna.Trial | None]  # one more trial, or None: the study has enough
PackObjective = Callable[[Sequence[optuna.Trial], Tell, Ask], None]


def make_pack_objective(
    cfg: DictConfig,
    specs: list[ParamSpec],
    splits: Splits,
    tracker: StudyTracker,
    revision: int = 0,
) -> PackObjective:
    def objective(trials: Sequence[optuna.Trial], tell: Tell, ask: Ask) -> None:
        with released_graphs():
            _run_pack(trials, tell, ask, cfg, specs, splits, tracker, revision)

    return objective


def _run_pack(
    trials: Sequence[optuna.Trial],
    tell: Tell,
    ask: Ask,
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

    def opening(trial: optuna.Trial) -> PackEntry:
        trial.set_user_attr(Attr.REVISION, revision)
        one = open_trial(trial, cfg, specs, tracker, revision)
        opened.append(one)
        start_training(one)
        source = "search" if LR_KEY in one.sampled else "config"
        one.run.log_params({f"{LR_KEY}_source": source})
        return one.config, one.recorder, one.pruning

    def more() -> tuple[int, PackEntry] | None:
        with held():  # asked and opened, or neither
            trial = ask()
            return None if trial is None else (len(opened), opening(trial))

    try:  # from here on, whatever happens closes every opened run
        entries = [opening(trial) for trial in trials]
        with interruptible():
            fit_packed(entries, splits, done, more)
    except BaseException as exc:
        for k, one in enumerate(opened):
            if k not in closed:
                end_failed(one, exc)
        raise
