"""Faults a study must survive: parallel workers, kill -9, Ctrl-C and SIGTERM, a trial that
raises, and the MLflow store going away mid-study. Real processes, the real CLI.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import client_in, journal_path, run_cli, study_in, tiny

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
FAIL = optuna.trial.TrialState.FAIL
RUNNING = optuna.trial.TrialState.RUNNING
# long enough trials to be caught in the middle: 40 epochs, no early stop, no pruning
SLOW_TRIALS = ("train.epochs=40", "train.patience=40", "pruner=none")
ONE_AT_A_TIME = "pack=1"  # caught mid-trial after one finished (packs: tests/test_pack_runs.py)


def start(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "search.run", *args],
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.communicate()[1][-2000:]}")
        try:
            if check():
                return
        except (KeyError, FileNotFoundError, ValueError):  # study not created yet
            pass
        time.sleep(0.3)
    proc.kill()
    pytest.fail("timed out waiting for the run")


def mid_trial(workdir: Path, finished: int = 1, storage: str | None = None) -> Callable[[], bool]:
    """At least ``finished`` finished trials, and one running that reported an epoch."""

    def check() -> bool:
        study = _load(workdir, storage)
        done = study.get_trials(deepcopy=False, states=FINISHED)
        running = study.get_trials(deepcopy=False, states=(RUNNING,))
        return len(done) >= finished and any(t.intermediate_values for t in running)

    return check


def _load(workdir: Path, storage: str | None) -> optuna.Study:
    if storage is None:
        if not journal_path(workdir).exists():
            raise FileNotFoundError
        return study_in(workdir)
    return optuna.load_study(study_name="deep_dnn", storage=storage)


def child_runs(client: MlflowClient, study: str = "deep_dnn") -> dict[int, list[object]]:
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.role` = 'trial'"
    )
    out: dict[int, list[object]] = {}
    for run in runs:
        out.setdefault(int(run.data.tags["optuna.trial_number"]), []).append(run)
    return out


def parent_runs(client: MlflowClient, study: str = "deep_dnn") -> list[object]:
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None
    return list(
        client.search_runs([experiment.experiment_id], filter_string="tags.`search.role` = 'study'")
    )


def assert_one_run_per_trial(study: optuna.Study, client: MlflowClient) -> None:
    """Every trial has exactly one child run under the single parent; states agree."""
    runs = child_runs(client)
    (parent,) = parent_runs(client)
    numbers = [t.number for t in study.trials if t.state != optuna.trial.TrialState.WAITING]
    assert sorted(runs) == sorted(numbers)
    assert sum(len(mine) for mine in runs.values()) == len(numbers)  # no trial has two runs
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.WAITING:
            continue
        (run,) = runs[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["optuna.state"] == trial.state.name
        assert run.info.status != "RUNNING"


def test_two_workers_share_the_study_and_stop_at_n_trials(workdir: Path) -> None:
    result = run_cli(
        "search.run",
        "study=deep_dnn",
        "n_trials=6",
        "workers=2",
        *tiny(workdir / "mlruns"),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "2 workers" in result.stdout
    study = study_in(workdir)
    assert len(study.get_trials(states=FINISHED)) == 6
    workers = {t.user_attrs["worker"] for t in study.trials if t.state in FINISHED}
    assert len(workers) == 2  # both processes ran trials
    assert_one_run_per_trial(study, client_in(workdir))


def test_kill_9_mid_trial_then_the_same_command_tops_up(workdir: Path) -> None:
    args = ["study=deep_dnn", "n_trials=3", ONE_AT_A_TIME, *tiny(workdir / "mlruns", *SLOW_TRIALS)]
    proc = start(workdir, *args)
    wait_for(mid_trial(workdir), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = {t.number: (t.state, t.value) for t in study_in(workdir).trials}
    assert RUNNING in {state for state, _ in before.values()}  # left behind by the kill

    again = run_cli("search.run", *args, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "died during the trial" in again.stdout
    study = study_in(workdir)
    for trial in study.trials:  # finished trials intact; the killed one failed
        state, value = before.get(trial.number, (None, None))
        if state in FINISHED:
            assert (trial.state, trial.value) == (state, value)
        if state == RUNNING:
            assert trial.state == FAIL and trial.user_attrs["orphaned"] is True
    assert len(study.get_trials(states=FINISHED)) == 3
    assert_one_run_per_trial(study, client_in(workdir))
    killed = [t for t in study.trials if t.state == FAIL]
    (run,) = child_runs(client_in(workdir))[killed[0].number]
    assert run.info.status == "KILLED"


@pytest.mark.parametrize(
    ("sent", "code", "workers"),
    [
        (signal.SIGINT, 130, 1),
        pytest.param(signal.SIGTERM, 143, 1, marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, 130, 2, marks=pytest.mark.slow),
        pytest.param(signal.SIGTERM, 143, 2, marks=pytest.mark.slow),
    ],
)
def test_interrupt_closes_the_running_trials_and_the_command_continues(
    workdir: Path, sent: signal.Signals, code: int, workers: int
) -> None:
    args = [
        "study=deep_dnn",
        "n_trials=3",
        f"workers={workers}",
        ONE_AT_A_TIME,
        *tiny(workdir / "mlruns", *SLOW_TRIALS),
    ]
    proc = start(workdir, *args)
    wait_for(mid_trial(workdir), proc)
    proc.send_signal(sent)  # to the main process only: it forwards to its workers
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == ["interrupted; run the same command again to continue"], stderr
    study = study_in(workdir)
    assert not study.get_trials(states=(RUNNING,))
    client = client_in(workdir)
    failed = study.get_trials(states=(FAIL,))
    assert 1 <= len(failed) <= workers  # the trial(s) running when the signal came
    for trial in failed:
        assert trial.user_attrs["outcome"] == "interrupted", (trial.user_attrs, stderr[-3000:])
        (run,) = child_runs(client)[trial.number]
        assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "FAIL"
    (parent,) = parent_runs(client)
    assert parent.info.status == "KILLED"

    # a shorter budget to finish quickly: a changed study, continued as the user says so
    again = run_cli("search.run", *args, "train.epochs=2", "accept_changes=true", cwd=workdir)
    assert again.returncode == 0, again.stderr
    study = study_in(workdir)
    assert len(study.get_trials(states=FINISHED)) == 3
    assert_one_run_per_trial(study, client)
    (parent,) = parent_runs(client)
    assert parent.info.status == "FINISHED"


def test_a_trial_that_raises_fails_alone_and_max_failures_stops_a_broken_space(
    workdir: Path,
) -> None:
    # tanh is fine; "nope" is no activation: those trials raise while building the model
    space = "+space.model.activation={type:categorical,choices:[tanh,nope]}"
    args = ["study=deep_dnn", "n_trials=4", "sampler=random", "max_failures=10", space]
    result = run_cli("search.run", *args, *tiny(workdir / "mlruns"), cwd=workdir)
    assert result.returncode == 0, result.stderr
    study = study_in(workdir)
    failed = study.get_trials(states=(FAIL,))
    assert failed and len(study.get_trials(states=FINISHED)) == 4
    client = client_in(workdir)
    for trial in failed:
        assert trial.params["model.activation"] == "nope"
        assert "nope" in trial.user_attrs["error"]
        (run,) = child_runs(client)[trial.number]
        assert run.info.status == "FAILED" and "nope" in run.data.tags["error"]

    broken = "+space.model.activation={type:categorical,choices:[nope]}"
    result = run_cli(
        "search.run",
        "study=deep_dnn",
        "n_trials=10",
        "max_failures=2",
        broken,
        "accept_changes=true",  # the space changed: its new revision is the broken one
        *tiny(workdir / "mlruns"),
        cwd=workdir,
    )
    assert result.returncode == 2
    in_a_row = re.search(r"stopped after (\d+) failed trials in a row", result.stderr)
    assert in_a_row, result.stderr
    assert 2 <= int(in_a_row[1]) <= 8  # max_failures, or the pack's trials that failed with it
    assert len(study_in(workdir).get_trials(states=(FAIL,))) == len(failed) + int(in_a_row[1])
