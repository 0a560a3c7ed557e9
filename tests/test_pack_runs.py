"""``pack=K`` in the real command: K asked trials train as fused packs, each its own Optuna
trial and MLflow run as if alone; the quota, pruning, Ctrl-C and kill -9 keep their meaning."""

from __future__ import annotations

import signal
from pathlib import Path

import optuna
import pytest

from tests.conftest import client_in, run_cli, study_in, tiny
from tests.test_faults import (
    FAIL,
    FINISHED,
    RUNNING,
    SLOW_TRIALS,
    assert_one_run_per_trial,
    child_runs,
    mid_trial,
    start,
    wait_for,
)

COMPLETE = optuna.trial.TrialState.COMPLETE


def test_a_packed_study_has_its_quota_and_a_run_per_trial_as_alone(workdir: Path) -> None:
    result = run_cli(
        "search.run",
        "study=deep_dnn",
        "n_trials=5",
        "pack=3",
        *tiny(workdir / "mlruns", "train.epochs=3", "~space.model.batch_norm"),
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    study = study_in(workdir)
    assert len(study.get_trials(states=FINISHED)) == 5  # 3 + 2: the quota, not two packs of 3
    assert_one_run_per_trial(study, client_in(workdir))
    client = client_in(workdir)
    runs = child_runs(client)
    packed = []
    for trial in study.get_trials(states=FINISHED):
        (run,) = runs[trial.number]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == sorted(trial.intermediate_values)  # its own epochs
        assert [m.value for m in history] == pytest.approx(list(trial.intermediate_values.values()))
        if trial.state == COMPLETE:
            assert trial.value == pytest.approx(max(m.value for m in history))
            packed.append(int(run.data.metrics["packed_trials"]))
    assert max(packed) >= 2, packed  # trials trained together
    assert len({t.params["optimizer.learning_rate"] for t in study.trials}) == 5


def test_ctrl_c_in_a_pack_closes_its_trials_and_the_command_continues(workdir: Path) -> None:
    args = [
        "study=deep_dnn",
        "n_trials=4",
        "pack=2",
        *tiny(workdir / "mlruns", *SLOW_TRIALS, "~space.model.batch_norm"),
    ]
    proc = start(workdir, *args)
    wait_for(mid_trial(workdir, finished=0), proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == [
        "interrupted; run the same command again to continue"
    ], stderr
    study = study_in(workdir)
    assert not study.get_trials(states=(RUNNING,))
    failed = study.get_trials(states=(FAIL,))
    assert len(failed) == 2  # the whole pack
    client = client_in(workdir)
    for trial in failed:
        assert trial.user_attrs["outcome"] == "interrupted"
        (run,) = child_runs(client)[trial.number]
        assert run.info.status == "KILLED"
    again = run_cli("search.run", *args, "train.epochs=2", "accept_changes=true", cwd=workdir)
    assert again.returncode == 0, again.stderr
    study = study_in(workdir)
    assert len(study.get_trials(states=FINISHED)) == 4
    assert_one_run_per_trial(study, client)


@pytest.mark.slow
def test_kill_9_in_a_pack_then_the_same_command_tops_up(workdir: Path) -> None:
    args = [
        "study=deep_dnn",
        "n_trials=3",
        "pack=2",
        *tiny(workdir / "mlruns", *SLOW_TRIALS, "~space.model.batch_norm"),
    ]
    proc = start(workdir, *args)
    wait_for(mid_trial(workdir, finished=0), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(study_in(workdir).get_trials(states=(RUNNING,))) == 2  # the pack's
    again = run_cli("search.run", *args, cwd=workdir)
    assert again.returncode == 0, again.stderr
    study = study_in(workdir)
    orphaned = [t for t in study.trials if t.user_attrs.get("orphaned")]
    assert len(orphaned) == 2 and all(t.state == FAIL for t in orphaned)
    assert len(study.get_trials(states=FINISHED)) == 3
    assert_one_run_per_trial(study, client_in(workdir))
