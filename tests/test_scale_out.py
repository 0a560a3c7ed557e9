"""Many machines: the same command against a real PostgreSQL (Optuna RDB storage, heartbeats
on) and a real ``mlflow server``; and the MLflow server going away in the middle of a study.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli, tiny
from tests.services import MlflowServer
from tests.test_faults import (
    FAIL,
    FINISHED,
    ONE_AT_A_TIME,
    SLOW_TRIALS,
    assert_one_run_per_trial,
    child_runs,
    mid_trial,
    start,
    wait_for,
)

pytestmark = pytest.mark.slow  # each starts an mlflow server and several study processes


def _remote(postgres_url: str, server: MlflowServer) -> list[str]:
    return [f"storage={postgres_url}", f"tracking_uri={server.url}", "heartbeat_interval=2"]


def test_two_machines_share_a_study_on_postgres_and_an_mlflow_server(
    workdir: Path, postgres_url: str, mlflow_server: MlflowServer
) -> None:
    """Two commands at once (two "machines", one with 2 workers): one study, n_trials."""
    args = [
        "study=deep_dnn",
        "n_trials=8",
        "pack=2",  # packs of 2, so that one machine does not take all 8 in its first ask
        # trials long enough that the first machine is still busy when the second one's two
        # workers have started (~10 s under CI's load): each of the three takes a share
        *tiny(workdir / "mlruns", *SLOW_TRIALS),
        *_remote(postgres_url, mlflow_server),
    ]
    first = start(workdir, *args)
    time.sleep(2.0)
    second = start(workdir, *args, "workers=2")
    for proc in (first, second):
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
    study = optuna.load_study(study_name="deep_dnn", storage=postgres_url)
    assert len(study.get_trials(states=FINISHED)) == 8
    assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) == 3
    client = MlflowClient(mlflow_server.url)
    assert_one_run_per_trial(study, client)
    run = next(iter(child_runs(client).values()))[0]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # uploaded through the server
    assert {"config.yaml", "history.csv"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }


def test_kill_9_on_postgres_fails_the_trial_and_kills_its_run(
    workdir: Path, postgres_url: str, mlflow_server: MlflowServer
) -> None:
    args = [
        "study=deep_dnn",
        "n_trials=2",
        ONE_AT_A_TIME,
        *tiny(workdir / "mlruns", *SLOW_TRIALS),
        *_remote(postgres_url, mlflow_server),
    ]
    proc = start(workdir, *args)
    wait_for(mid_trial(workdir, storage=postgres_url), proc)
    proc.kill()
    proc.wait(timeout=30)
    again = run_cli("search.run", *args, "train.epochs=2", "accept_changes=true", cwd=workdir)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="deep_dnn", storage=postgres_url)
    (killed,) = study.get_trials(states=(FAIL,))
    assert len(study.get_trials(states=FINISHED)) == 2
    client = MlflowClient(mlflow_server.url)
    assert_one_run_per_trial(study, client)
    (run,) = child_runs(client)[killed.number]
    assert run.info.status == "KILLED"


def test_mlflow_server_down_mid_study_then_sync_backfills(
    workdir: Path, mlflow_server: MlflowServer
) -> None:
    args = ["study=deep_dnn", "n_trials=4", ONE_AT_A_TIME, f"tracking_uri={mlflow_server.url}"]
    proc = start(workdir, *args, *tiny(workdir / "mlruns", "train.epochs=6", "pruner=none"))
    wait_for(mid_trial(workdir), proc)
    mlflow_server.stop()
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert stdout.count("unreachable") >= 1
    assert stdout.count("unreachable (") == 1  # said once, not per request
    study = optuna.load_study(
        study_name="deep_dnn", storage=optuna.storages.JournalStorage(_journal(workdir))
    )
    assert len(study.get_trials(states=FINISHED)) == 4  # Optuna has every result

    mlflow_server.start()
    synced = run_cli("search.sync", *args, f"mlruns_dir={workdir / 'mlruns'}", cwd=workdir)
    assert synced.returncode == 0, synced.stderr
    assert "back-filled" in synced.stdout
    client = MlflowClient(mlflow_server.url)
    assert_one_run_per_trial(study, client)
    runs = child_runs(client)
    backfilled = [r[0] for r in runs.values() if r[0].data.tags.get("search.backfilled")]
    assert backfilled
    for run in backfilled:  # the reported metric per epoch, from Optuna's intermediate values
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        trial = study.trials[int(run.data.tags["optuna.trial_number"])]
        assert {m.step: m.value for m in history} == trial.intermediate_values
        learning_rate = float(run.data.params["optimizer.learning_rate"])
        assert learning_rate == pytest.approx(trial.params["optimizer.learning_rate"])

    again = run_cli("search.sync", *args, f"mlruns_dir={workdir / 'mlruns'}", cwd=workdir)
    assert again.returncode == 0 and "0 run(s) back-filled, 0 closed" in again.stdout


def _journal(workdir: Path) -> optuna.storages.journal.JournalFileBackend:
    return optuna.storages.journal.JournalFileBackend(str(workdir / "mlruns" / "optuna.journal"))
