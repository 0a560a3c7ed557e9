"""One worker's trial loop: ask, run the objective, tell, until the study has enough.

Any number of these loops, in processes on one or many machines, share a study through
its storage; the storage numbers the trials. ``study.optimize`` decides to stop from the
finished count it sees after a trial, so parallel workers overshoot ``n_trials`` (each
starts one more while the others' last trials are still running). Here a worker stops
when finished plus running trials fill the quota, and a trial asked in a race, whose
lower-numbered trials already fill it, goes back to WAITING unrun (the next run that
needs a trial picks it up). A study therefore ends with exactly ``n_trials`` finished
trials; a running trial that fails leaves its worker (or the next run) to top up.

What a trial's end makes it is ``search.study.outcome``'s one decision: a returned value is
COMPLETE, a pruning or a diagnosis PRUNED, any other exception FAIL (the study goes on);
Ctrl-C / SIGTERM fail the trial and end the worker (they are held while a trial is asked or
told: ``search.cli.signals``). On RDB storages Optuna's heartbeat thread runs during each
trial and stale trials of dead workers are failed before each ask. ``study.stop()`` works
as in ``optimize``; a grid sampler whose grid is used up ends the loop (``grid_done``)
before it would ask for a duplicate point.
"""

from __future__ import annotations

import contextlib
import gc
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.cli.signals import held, raise_pending
from search.study._optuna import accept_stop, give_back, heartbeat, stop_asked
from search.study.orphans import mark_worker
from search.study.outcome import outcome_of
from search.study.storage import FINISHED

__all__ = ["Ask", "Callback", "Objective", "StopRule", "grid_done", "run_trials", "settle_heap"]

Callback = Callable[[optuna.Study, FrozenTrial], None]
Objective = Callable[[optuna.Trial], float | Sequence[float]]  # several: multi-objective
# K trials at once (a fused pack); it tells each trial's end (its k, its value(s) or the
# exception that ended it) as it comes, with the function it is given, and may ask one more
# trial at a time (a freed place): its k is the count of trials before it; None when the
# study has enough (quota, time, a stop)
Tell = Callable[[int, float | Sequence[float] | BaseException], None]
Ask = Callable[[], optuna.Trial | None]
PackObjective = Callable[[Sequence[optuna.Trial], Tell, Ask], None]
_TAKEN = (*FINISHED, TrialState.RUNNING)


@dataclass
class StopRule:
    """When this worker stops: quota filled, time up, or a callback asked to stop."""

    n_trials: int
    timeout: float | None = None
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    workers: int = 1  # processes sharing the quota: a pack asks no more than its share

    def time_up(self) -> bool:
        return self.timeout is not None and self.clock() - self.started >= self.timeout

    def ask_size(self, taken: int, pack: int) -> int:
        """Trials one ask of packs of up to ``pack`` takes of the ``n_trials - taken``
        left: those split evenly into the fewest asks (20 left, packs of 8: 7, 7, 6, not
        8, 8, 4, so a study's packs are one kind, traced once) and, so that the other
        workers get theirs, into at least one ask per worker."""
        left = max(0, self.n_trials - taken)
        asks = max(-(-left // pack), min(self.workers, left))
        return -(-left // asks) if asks else 0


def settle_heap() -> None:
    """Collect once, then move every object alive now (TensorFlow, MLflow, the data) to
    the collector's permanent generation. Each trial's full collection (in Keras'
    ``clear_session``) then scans only what trials made: 0.5 s -> 0.2 s per trial on digits."""
    gc.collect()
    gc.freeze()


def run_trials(
    study: optuna.Study,
    objective: Objective,
    rule: StopRule,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] = lambda: False,
    pack: int | Callable[[], int] = 1,
    pack_objective: PackObjective | None = None,
) -> int:
    """Run trials until the rule says stop; returns how many trials this worker told.
    With ``pack`` > 1 (a number, or asked before each ask) and a ``pack_objective``, up to
    ``pack`` trials are asked at once (what the quota leaves split evenly, at least one ask
    per worker: ``StopRule.ask_size``) and run by ``pack_objective`` together, which tells
    each as it ends (the callbacks see it then) and may ask more, one at a time, while the
    rule lets this loop go on (a pack's freed place takes a trial the sampler asked with the
    values told so far).

    Signals are held (see ``search.cli.signals``): one that comes while a trial is asked,
    told or its run opened or closed is raised inside the objective's training, or here at
    the next turn, never half way through the bookkeeping."""
    told = 0
    with held(), accept_stop(study):
        while not (should_stop() or rule.time_up() or stop_asked(study)):
            raise_pending()
            _fail_stale(study)
            if _taken(study) >= rule.n_trials or grid_done(study):
                break
            size = pack() if callable(pack) else pack
            if size > 1 and pack_objective is not None:
                trials = _ask_pack(study, rule.ask_size(_taken(study), size), rule)
                if not trials:
                    break

                def more() -> optuna.Trial | None:
                    stop = should_stop() or rule.time_up() or stop_asked(study)
                    return None if stop else next(iter(_ask_pack(study, 1, rule)), None)

                told += _run_pack(study, trials, pack_objective, callbacks, more)
            else:
                trial = _ask(study)
                if _taken(study, below=trial.number) >= rule.n_trials:
                    give_back(study, trial)
                    break
                _finished(study, _run_one(study, trial, objective), callbacks)
                told += 1
    raise_pending()
    return told


def _ask_pack(study: optuna.Study, size: int, rule: StopRule) -> list[optuna.Trial]:
    """Up to ``size`` trials while the quota has room; one asked in a race (lower-numbered
    trials fill the quota) goes back to WAITING, and no more are asked."""
    trials: list[optuna.Trial] = []
    while len(trials) < size and not grid_done(study) and not _grid_started(study):
        if _taken(study) >= rule.n_trials:
            break
        trial = _ask(study)
        if _taken(study, below=trial.number) >= rule.n_trials:
            give_back(study, trial)
            break
        trials.append(trial)
    return trials


def _run_pack(
    study: optuna.Study,
    trials: Sequence[optuna.Trial],
    objective: PackObjective,
    callbacks: Sequence[Callback],
    more: Callable[[], optuna.Trial | None] = lambda: None,
) -> int:
    """Run a pack, telling each trial its own end as the objective reports it, and asking
    ``more`` for it one at a time; returns how many it told. An interrupt fails those not
    told yet and propagates."""
    told: dict[int, FrozenTrial] = {}
    trials = list(trials)

    def tell(k: int, outcome: Any) -> None:
        with held():
            told[k] = _tell(study, trials[k], outcome)
            _finished(study, told[k], callbacks)

    for trial in trials:
        mark_worker(trial)
    with contextlib.ExitStack() as beats:
        for trial in trials:
            beats.enter_context(heartbeat(study, trial))  # type: ignore[arg-type]

        def ask() -> optuna.Trial | None:
            with held():  # asked, marked and beating, or not asked
                trial = more()
                if trial is not None:
                    mark_worker(trial)
                    beats.enter_context(heartbeat(study, trial))  # type: ignore[arg-type]
                    trials.append(trial)
                return trial

        try:
            objective(list(trials), tell, ask)
        except BaseException as exc:  # the objective has closed the runs of those not told
            interrupted = outcome_of(exc).interrupted
            for k in range(len(trials)):
                if k not in told:
                    told[k] = _tell(study, trials[k], exc)
                    if not interrupted:
                        _finished(study, told[k], callbacks)
            if interrupted:  # Ctrl-C, SIGTERM: told, then the worker ends
                raise
    for k in range(len(trials)):  # an objective that told no end of a trial failed it
        if k not in told:
            tell(k, RuntimeError("the pack's objective gave this trial no end"))
    return len(told)


def _finished(study: optuna.Study, frozen: FrozenTrial, callbacks: Sequence[Callback]) -> None:
    for callback in callbacks:
        callback(study, frozen)


def _tell(study: optuna.Study, trial: optuna.Trial, result: Any) -> FrozenTrial:
    """Tell Optuna a trial's end: its value(s), or the state of the exception that ended it."""
    if not isinstance(result, BaseException):
        return study.tell(trial, result, skip_if_finished=True)
    outcome = outcome_of(result)
    if outcome.interrupted:  # it may have come after the objective recorded its end
        with contextlib.suppress(Exception):  # never hide the interrupt
            for key, value in outcome.user_attrs().items():
                trial.set_user_attr(key, value)
    return study.tell(trial, state=outcome.state, skip_if_finished=True)


def grid_done(study: optuna.Study) -> bool:
    """True when the study's sampler is a grid and every point of it is tried or running."""
    sampler = getattr(study.sampler, "inner", study.sampler)  # samplers.OnStep wraps it
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


def _grid_started(study: optuna.Study) -> bool:
    """A grid sampler's every point is finished or running: another ask would repeat one
    (Optuna's grid hands out running points again once none is left unstarted)."""
    sampler = getattr(study.sampler, "inner", study.sampler)
    points = getattr(sampler, "_all_grids", None)  # GridSampler's grid (no public size)
    if not isinstance(sampler, optuna.samplers.GridSampler) or points is None:
        return False
    states = (*FINISHED, TrialState.FAIL, TrialState.RUNNING)
    taken = {t.system_attrs.get("grid_id") for t in study.get_trials(False, states=states)}
    return len(taken - {None}) >= len(points)


def _run_one(study: optuna.Study, trial: optuna.Trial, objective: Objective) -> FrozenTrial:
    mark_worker(trial)
    with heartbeat(study, trial):
        try:
            value = objective(trial)
        except BaseException as exc:  # the objective has recorded it on the trial and its run
            frozen = _tell(study, trial, exc)
            if outcome_of(exc).interrupted:  # Ctrl-C, SIGTERM: the trial is closed, the worker ends
                raise
            return frozen
    return _tell(study, trial, value)


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():  # "Heartbeat ... supposed to be used with Study.optimize":
        warnings.simplefilter("ignore", UserWarning)  # this loop runs the heartbeat thread
        return study.ask()


def _taken(study: optuna.Study, below: int | None = None) -> int:
    """Finished trials plus trials other workers are running (they will finish)."""
    trials = study.get_trials(deepcopy=False, states=_TAKEN)
    return sum(below is None or t.number < below for t in trials)


def _fail_stale(study: optuna.Study) -> None:
    """Fail the trials of dead workers whose heartbeat went stale (RDB storages only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
