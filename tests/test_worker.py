"""The trial loop's stop rule, orphan detection and the MLflow sync, without Keras:
in-memory or journal Optuna studies, a SQLite MLflow store, trivial objectives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search.study import (
    Attr,
    FailureGuard,
    StopRule,
    open_storage,
    reap_orphans,
    run_trials,
    worker_alive,
    worker_id,
)
from search.study.loop import Ask, Tell
from search.tracking import StudyTracker, sync_study

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _study() -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.report(x / 2, step=0)
    if trial.number % 3 == 2:
        raise optuna.TrialPruned()
    return x


def test_the_loop_stops_at_exactly_n_finished_trials() -> None:
    study = _study()
    told = run_trials(study, _objective, StopRule(n_trials=7))
    assert told == 7 and len(study.get_trials(states=FINISHED)) == 7
    assert run_trials(study, _objective, StopRule(n_trials=7)) == 0  # already there


def test_failed_trials_do_not_count_and_are_topped_up() -> None:
    study = _study()

    def flaky(trial: optuna.Trial) -> float:
        if trial.number in (1, 2):
            raise RuntimeError("bad combination")
        return 0.5

    run_trials(study, flaky, StopRule(n_trials=3))
    assert [t.state for t in study.trials].count(TrialState.FAIL) == 2
    assert len(study.get_trials(states=FINISHED)) == 3


def test_other_workers_running_trials_count_towards_the_quota() -> None:
    study = _study()
    run_trials(study, _objective, StopRule(n_trials=2))
    study.ask()  # another worker's trial, still running
    assert run_trials(study, _objective, StopRule(n_trials=3)) == 0


def test_a_trial_asked_in_a_race_goes_back_to_waiting_unrun() -> None:
    study = _study()
    run_trials(study, _objective, StopRule(n_trials=2))
    real_ask = study.ask

    def racing_ask() -> optuna.Trial:
        study.ask = real_ask  # type: ignore[method-assign]
        real_ask()  # another worker asks between our count and our ask
        return real_ask()

    study.ask = racing_ask  # type: ignore[method-assign]
    ran: list[int] = []
    told = run_trials(study, lambda t: ran.append(t.number) or 1.0, StopRule(n_trials=3))
    assert told == 0 and not ran
    assert [t.state for t in study.trials][2:] == [TrialState.RUNNING, TrialState.WAITING]
    study.tell(2, 0.1)  # the other worker finishes; a later run takes the waiting trial
    run_trials(study, _objective, StopRule(n_trials=4))
    assert len(study.get_trials(states=FINISHED)) == 4 and len(study.trials) == 4


def test_max_failures_in_a_row_stops_the_loop() -> None:
    study = _study()
    guard = FailureGuard(3)

    def broken(trial: optuna.Trial) -> float:
        raise ValueError("no such activation")

    run_trials(study, broken, StopRule(100), [guard], should_stop=lambda: bool(guard.message))
    assert len(study.trials) == 3
    assert "stopped after 3 failed trials in a row" in guard.message


def test_timeout_ends_the_loop_between_trials() -> None:
    clock = [0.0]

    def slow(trial: optuna.Trial) -> float:  # each trial takes 4 s on the rule's clock
        clock[0] += 4.0
        return 0.5

    rule = StopRule(n_trials=1000, timeout=10.0, started=0.0, clock=lambda: clock[0])
    assert run_trials(_study(), slow, rule) == 3  # started at 0, 4 and 8 s; at 12 s: time up
    assert rule.time_up() and not StopRule(n_trials=1, timeout=None).time_up()


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_worker_alive_tells_live_dead_reused_and_remote_processes() -> None:
    assert worker_alive(worker_id()) is True
    assert worker_alive(f"{socket.gethostname()}:{_dead_pid()}:1.00") is False
    assert worker_alive(f"{socket.gethostname()}:{os.getpid()}:1.00") is False  # pid re-used
    assert worker_alive(f"elsewhere-{socket.gethostname()}:{os.getpid()}:1.00") is None


def test_reap_orphans_fails_only_trials_of_dead_workers_here(tmp_path: Path) -> None:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "s.journal"))
    )
    study = optuna.create_study(study_name="s", storage=storage)
    for worker in (
        f"{socket.gethostname()}:{_dead_pid()}:1.00",  # killed
        worker_id(),  # alive (this process)
        f"other-host:{os.getpid()}:1.00",  # another machine: heartbeats' job
    ):
        study.ask().set_user_attr(Attr.WORKER, worker)
    reaped = reap_orphans(study)
    assert [t.number for t in reaped] == [0]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    assert study.trials[0].user_attrs["orphaned"] is True
    assert "died during the trial" in study.trials[0].user_attrs["error"]


@pytest.fixture()
def tracker(tmp_path: Path) -> StudyTracker:
    tracker = StudyTracker(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art"), "s")
    tracker.check()
    tracker.open()
    return tracker


def test_sync_backfills_missing_runs_and_closes_stale_ones(tracker: StudyTracker) -> None:
    study = _study()
    run_trials(study, _objective, StopRule(n_trials=3))
    failed = study.ask()
    failed.set_user_attr("error", "ValueError: boom")
    study.tell(failed, state=TrialState.FAIL)
    stale = tracker.start_trial(0, study.trials[0].params, {"x": 1})  # left RUNNING
    client: MlflowClient = tracker.client

    created, closed = sync_study(study, tracker, "val_accuracy")
    assert (created, closed) == (3, 1)  # trials 1, 2, 3 had no run; trial 0's was RUNNING
    runs = tracker.trial_runs()
    assert sorted(runs) == [0, 1, 2, 3] and all(len(r) == 1 for r in runs.values())
    assert client.get_run(stale.run_id).info.status == "FINISHED"
    assert runs[3][0].info.status == "FAILED"
    assert runs[3][0].data.tags["error"] == "ValueError: boom"
    pruned = runs[2][0]
    assert pruned.data.tags["optuna.state"] == "PRUNED"
    assert pruned.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    history = client.get_metric_history(pruned.info.run_id, "val_accuracy")
    assert {m.step: m.value for m in history} == study.trials[2].intermediate_values
    assert sync_study(study, tracker, "val_accuracy") == (0, 0)


def test_an_unreachable_store_goes_offline_once_and_comes_back(
    tracker: StudyTracker, caplog: pytest.LogCaptureFixture
) -> None:
    tracker.backoff = 0.01
    calls = []

    def down(*args: object) -> None:
        calls.append(args)
        raise OSError("connection refused")

    assert tracker.call(down, 1) is None
    assert len(calls) == tracker.retries and not tracker.online
    assert tracker.call(down, 2) is None and len(calls) == tracker.retries  # dropped at once
    run = tracker.start_trial(5, {"x": 0.5}, {"x": 0.5})  # the store is back: reconnects
    assert tracker.online and run.run_id
    warnings = [r.message for r in caplog.records if "unreachable (" in r.message]
    assert len(warnings) == 1 and "search.sync study_name=s" in warnings[0]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # this test's own ask()
def test_rdb_heartbeats_fail_a_silent_worker_on_another_machine(tmp_path: Path) -> None:
    """No pid to check on another host: its trial fails once its heartbeat is stale."""
    storage = open_storage(f"sqlite:///{tmp_path}/o.db", heartbeat_interval=1)
    study = optuna.create_study(study_name="s", storage=storage)
    remote = study.ask()
    remote.set_user_attr(Attr.WORKER, f"other-host:{os.getpid()}:1.00")
    storage.record_heartbeat(remote._trial_id)  # then that machine goes silent
    assert reap_orphans(study) == []  # not ours to judge
    time.sleep(3.5)  # past the grace period (2 x heartbeat_interval; SQLite keeps seconds)
    run_trials(study, _objective, StopRule(n_trials=1))
    assert study.trials[0].state == TrialState.FAIL
    assert len(study.get_trials(states=FINISHED)) == 1


@pytest.mark.parametrize(
    ("n_trials", "pack", "workers", "asks"),
    [
        (20, 8, 1, [7, 7, 6]),  # not 8, 8, 4: one size of pack, traced once
        (10, 8, 1, [5, 5]),
        (3, 8, 1, [3]),
        (20, 8, 2, [7, 7, 3, 2, 1]),  # at most half what is left while two workers share it
    ],
)
def test_packs_split_what_is_left_evenly(
    n_trials: int, pack: int, workers: int, asks: list[int]
) -> None:
    study, sizes = _study(), []

    def together(trials: Sequence[optuna.Trial], tell: Tell, ask: Ask) -> None:
        sizes.append(len(trials))
        for k, trial in enumerate(trials):
            tell(k, trial.suggest_float("x", 0.0, 1.0))

    rule = StopRule(n_trials=n_trials, workers=workers)
    assert run_trials(study, _objective, rule, pack=pack, pack_objective=together) == n_trials
    assert sizes == asks


def test_a_pack_tells_each_trial_as_it_ends_and_an_interrupt_fails_only_the_rest() -> None:
    """The sampler and the callbacks see a member's end while its pack trains on; Ctrl-C
    then fails the members not told (their trials FAIL, the told one stays COMPLETE)."""
    study, seen = _study(), []

    def interrupted(trials: Sequence[optuna.Trial], tell: Tell, ask: Ask) -> None:
        tell(1, 0.25)
        assert study.trials[1].state == TrialState.COMPLETE  # told before the pack ends
        assert seen == [1]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trials(
            study,
            _objective,
            StopRule(n_trials=3),
            callbacks=[lambda _, frozen: seen.append(frozen.number)],
            pack=3,
            pack_objective=interrupted,
        )
    assert [t.state for t in study.trials] == [
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.FAIL,
    ]
    assert study.trials[1].value == 0.25 and seen == [1]  # the interrupted are not reported


def test_a_pack_trial_its_objective_never_told_fails() -> None:
    study = _study()

    def forgetful(trials: Sequence[optuna.Trial], tell: Tell, ask: Ask) -> None:
        tell(0, 0.5)

    run_trials(study, _objective, StopRule(n_trials=2), pack=2, pack_objective=forgetful)
    assert [t.state for t in study.trials[:2]] == [TrialState.COMPLETE, TrialState.FAIL]


def test_a_pack_asks_more_trials_into_freed_places_up_to_the_quota() -> None:
    """A place freed by a told trial takes one asked then: the sampler has the values told
    so far; asks stop at the quota (no trial left WAITING), and an interrupt fails the
    asked trials not told."""
    study, sizes = _study(), []

    def rolling(trials: Sequence[optuna.Trial], tell: Tell, ask: Ask) -> None:
        sizes.append(len(trials))
        for k, trial in enumerate(trials):
            tell(k, trial.suggest_float("x", 0.0, 1.0))
        k = len(trials)
        while (trial := ask()) is not None:
            assert len(study.get_trials(states=FINISHED)) == k  # all before it told
            tell(k, trial.suggest_float("x", 0.0, 1.0))
            k += 1

    assert run_trials(study, _objective, StopRule(n_trials=7), pack=2, pack_objective=rolling) == 7
    assert sizes == [2] and len(study.trials) == 7  # one pack: its places took the other 5
    assert all(t.state == TrialState.COMPLETE for t in study.trials)

    study = _study()

    def interrupted(trials: Sequence[optuna.Trial], tell: Tell, ask: Ask) -> None:
        tell(0, 0.5)
        assert ask() is not None
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trials(study, _objective, StopRule(n_trials=5), pack=2, pack_objective=interrupted)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, *[TrialState.FAIL] * 2]


def test_a_pack_asks_no_more_once_time_is_up() -> None:
    now = [0.0]
    study = _study()

    def slow(trials: Sequence[optuna.Trial], tell: Tell, ask: Ask) -> None:
        now[0] = 10.0  # past the timeout
        assert ask() is None
        for k in range(len(trials)):
            tell(k, 0.5)

    rule = StopRule(n_trials=9, timeout=5.0, started=0.0, clock=lambda: now[0])
    assert run_trials(study, _objective, rule, pack=2, pack_objective=slow) == 2
    assert len(study.trials) == 2
