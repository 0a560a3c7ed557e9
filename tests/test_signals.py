"""Where a Ctrl-C / SIGTERM lands in the trial loop: never between a trial's ask and its
first step, nor in its tell (a trial left RUNNING for ever, a run that disagrees)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState

import search.cli.signals
import search.study.loop
from search.cli import Terminated, held, install_handlers, interruptible
from search.study import StopRule, run_trials


@pytest.fixture(autouse=True)
def handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's handlers for each test, and a signal it received forgotten after it
    (it stays remembered on purpose: later tests' trial loops would raise it)."""
    monkeypatch.setattr(search.cli.signals, "_received", [])
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    hook = sys.unraisablehook
    install_handlers()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    sys.unraisablehook = hook


def _sigterm() -> None:
    """SIGTERM to this process; returns once Python has run its handler."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # the handler runs at the next bytecode boundary in the main thread


def _study() -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))


def test_a_held_signal_waits_for_the_next_interruptible_block() -> None:
    with held():
        _sigterm()  # would raise Terminated here if it were not held
        reached = True
        with pytest.raises(Terminated), interruptible():
            reached = False
    assert reached


def test_a_signal_during_the_ask_fails_the_trial_instead_of_leaving_it_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_ask = search.study.loop._ask

    def ask_then_signal(study: optuna.Study) -> optuna.Trial:
        trial = real_ask(study)  # the storage holds it as RUNNING now
        _sigterm()
        return trial

    def objective(trial: optuna.Trial) -> float:
        with interruptible():  # as the real objective does around training
            return trial.suggest_float("x", 0.0, 1.0)

    monkeypatch.setattr(search.study.loop, "_ask", ask_then_signal)
    study = _study()
    with pytest.raises(Terminated):
        run_trials(study, objective, StopRule(n_trials=3))
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_a_signal_after_training_lets_the_trial_finish_then_stops_the_loop() -> None:
    def objective(trial: optuna.Trial) -> float:
        with interruptible():
            value = trial.suggest_float("x", 0.0, 1.0)
        _sigterm()  # while the run is being closed: the trial still gets its value
        return value

    study = _study()
    with pytest.raises(Terminated):
        run_trials(study, objective, StopRule(n_trials=3))
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == trial.params["x"]
