"""Trained models kept in MLflow (``tracking.log_models``): logged models linked to their
trial's run, the study's registered model and its ``champion`` alias, ``best.keras`` from
export, a re-train's version, and serving the champion on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import keras
import mlflow
import numpy as np
import optuna
import pytest
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from search.data import splits_of
from search.study import Attr
from search.tracking import ALIAS, crown
from tests.conftest import client_in, compose, run_cli, study_in, tiny

COMPLETE = optuna.trial.TrialState.COMPLETE


def _uri(workdir: Path) -> str:
    return f"sqlite:///{workdir}/mlruns/mlflow.db"


def _versions(client: MlflowClient, name: str = "deep_dnn") -> list[ModelVersion]:
    return sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))


def _val(workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    splits = splits_of(compose(*tiny(workdir / "mlruns")))
    return splits.x_val, splits.y_val  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-trial study on digits with the default tracking.log_models=best, exported."""
    workdir = tmp_path_factory.mktemp("registry")
    (workdir / "mlruns").mkdir()
    args = ["study=deep_dnn", "n_trials=4", *tiny(workdir / "mlruns", "train.epochs=3")]
    done = run_cli("search.run", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    exported = run_cli("search.export", *args, cwd=workdir)
    assert exported.returncode == 0, exported.stderr
    assert "best.keras" in exported.stdout
    return workdir


def test_the_champion_is_the_best_trial_and_each_version_was_a_new_best(study_dir: Path) -> None:
    study, client = study_in(study_dir), client_in(study_dir)
    versions = _versions(client)
    assert versions, "no registered model"
    trials = [int(v.tags["optuna.trial_number"]) for v in versions]
    values = [study.trials[n].value for n in trials]
    assert trials == sorted(trials) and values == sorted(values)  # each beat those before
    assert len(set(values)) == len(values)
    champion = client.get_model_version_by_alias("deep_dnn", ALIAS)
    assert int(champion.tags["optuna.trial_number"]) == study.best_trial.number
    assert float(champion.tags["search.value"]) == pytest.approx(study.best_value)
    # a trial that never beat the best kept no model
    kept = {t.number for t in study.get_trials(states=(COMPLETE,)) if Attr.MODEL_ID in t.user_attrs}
    assert kept == set(trials)


def test_a_kept_model_is_linked_to_its_run_and_scores_the_trials_value(study_dir: Path) -> None:
    study, client = study_in(study_dir), client_in(study_dir)
    best = study.best_trial
    model_id = best.user_attrs[Attr.MODEL_ID]
    logged = client.get_logged_model(model_id)
    run_id = best.user_attrs[Attr.MLFLOW_RUN_ID]
    assert logged.source_run_id == run_id and str(logged.status) in (
        "READY",
        "LoggedModelStatus.READY",
    )
    run = client.get_run(run_id)
    assert model_id in [output.model_id for output in run.outputs.model_outputs]
    linked = {m.key: m.value for m in logged.metrics}
    assert linked["val_accuracy"] == pytest.approx(best.value)  # the best epoch's figures
    assert "test_accuracy" in linked and "best_val_accuracy" in linked  # and the final ones
    mlflow.set_tracking_uri(_uri(study_dir))
    model = mlflow.pyfunc.load_model(f"models:/{model_id}")
    x, y = _val(study_dir)
    probabilities = np.asarray(model.predict(x.astype("float32")))
    assert probabilities.shape == (len(x), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y))
    assert accuracy == pytest.approx(best.value, abs=1e-6)  # the restored best-epoch weights


def test_the_champion_loads_with_pyfunc_and_predicts_as_best_keras(study_dir: Path) -> None:
    mlflow.set_tracking_uri(_uri(study_dir))
    champion = mlflow.pyfunc.load_model("models:/deep_dnn@champion")
    exported = keras.saving.load_model(study_dir / "exports/deep_dnn/best.keras", safe_mode=True)
    x, _ = _val(study_dir)
    np.testing.assert_allclose(
        np.asarray(champion.predict(x[:32].astype("float32"))),
        exported.predict(x[:32], verbose=0),
        rtol=1e-6,
        atol=1e-7,
    )


def test_a_retrain_is_a_new_version_naming_its_trial_and_not_the_champion(study_dir: Path) -> None:
    client = client_in(study_dir)
    before = str(client.get_model_version_by_alias("deep_dnn", ALIAS).version)
    count = len(_versions(client))
    best_yaml = study_dir / "exports/deep_dnn/best.yaml"
    done = run_cli("search.train", f"from={best_yaml}", cwd=study_dir)
    assert done.returncode == 0, done.stderr
    versions = _versions(client)
    assert len(versions) == count + 1
    retrain = versions[-1]
    best = study_in(study_dir).best_trial
    assert retrain.tags["search.source_trial"] == str(best.number)
    assert retrain.tags["search.role"] == "retrain"
    assert str(client.get_model_version_by_alias("deep_dnn", ALIAS).version) == before
    assert f"version {retrain.version}" in done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations_on_loopback(study_dir: Path) -> None:
    port = _free_port()
    venv = str(Path(sys.executable).parent)  # uvicorn, as in an activated virtual env
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": _uri(study_dir),
        "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    serve = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/deep_dnn@champion"]
    server = subprocess.Popen(
        [*serve, "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
        cwd=study_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        x, _ = _val(study_dir)
        body = json.dumps({"inputs": x[:4].astype("float32").tolist()}).encode()
        answer = _post(f"http://127.0.0.1:{port}/invocations", body, server)
        served = np.asarray(answer["predictions"])
        mlflow.set_tracking_uri(_uri(study_dir))
        local = mlflow.pyfunc.load_model("models:/deep_dnn@champion").predict(
            x[:4].astype("float32")
        )
        np.testing.assert_allclose(served, np.asarray(local), rtol=1e-5, atol=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _post(url: str, body: bytes, server: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve ended: {server.communicate()[1][-2000:]}")
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return dict(json.loads(response.read()))
        except OSError:
            time.sleep(1)
    pytest.fail("mlflow models serve did not answer in 180 s")


@pytest.mark.parametrize("mode", ["all", "none"])
def test_log_models_all_keeps_every_completed_trial_and_none_keeps_nothing(
    workdir: Path, mode: str
) -> None:
    args = [
        "study=deep_dnn",
        "n_trials=3",
        f"tracking.log_models={mode}",
        *tiny(workdir / "mlruns"),
    ]
    done = run_cli("search.run", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    study, client = study_in(workdir), client_in(workdir)
    completed = study.get_trials(states=(COMPLETE,))
    kept = [t for t in completed if Attr.MODEL_ID in t.user_attrs]
    exported = run_cli("search.export", *args, cwd=workdir)
    assert exported.returncode == 0, exported.stderr
    best_keras = workdir / "exports/deep_dnn/best.keras"
    if mode == "all":
        assert completed and len(kept) == len(completed)
        assert best_keras.is_file()
    else:
        assert not kept and not client.search_registered_models()
        assert not best_keras.exists() and "no best.keras" in exported.stdout


def test_log_models_nonsense_is_one_line(workdir: Path) -> None:
    done = run_cli(
        "search.run",
        "study=deep_dnn",
        "tracking.log_models=sometimes",
        *tiny(workdir / "mlruns"),
        cwd=workdir,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: tracking.log_models must be best, all or none, got 'sometimes'"
    ]
    assert not (workdir / "mlruns/optuna.journal").exists()


def _version(client: MlflowClient, trial: int, value: float, retrain: bool = False) -> str:
    tags = {"optuna.trial_number": str(trial), "search.value": repr(value)}
    if retrain:
        tags["search.source_trial"] = str(trial)
    return str(client.create_model_version("m", source="file:///nowhere", tags=tags).version)


@pytest.mark.parametrize("maximize", [True, False])
def test_crown_picks_the_best_trial_ties_to_the_lower_number_never_a_retrain(
    tmp_path: Path, maximize: bool
) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    client.create_registered_model("m")
    assert crown(client, "m", maximize) is None  # no version yet
    v_low = _version(client, 0, 0.5)
    v_high = _version(client, 1, 0.9)
    _version(client, 2, 0.9)  # a later trial with the same value: not the champion
    _version(client, 1, 0.99 if maximize else 0.01, retrain=True)  # a re-train never is
    expected = v_high if maximize else v_low
    assert crown(client, "m", maximize) == expected
    assert str(client.get_model_version_by_alias("m", ALIAS).version) == expected


@pytest.mark.slow
def test_parallel_workers_and_a_continued_study_keep_the_champion_on_the_best(
    workdir: Path,
) -> None:
    args = ["study=deep_dnn", "workers=2", *tiny(workdir / "mlruns")]
    for n_trials in (4, 6):  # the second run continues the study
        done = run_cli("search.run", *args, f"n_trials={n_trials}", cwd=workdir)
        assert done.returncode == 0, done.stderr
        study, client = study_in(workdir), client_in(workdir)
        champion = client.get_model_version_by_alias("deep_dnn", ALIAS)
        assert int(champion.tags["optuna.trial_number"]) == study.best_trial.number
        assert champion.source == f"models:/{study.best_trial.user_attrs[Attr.MODEL_ID]}"


UNSAVABLE = """
import keras

class Scaled(keras.layers.Layer):  # not registered, no get_config: saved, not loadable
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return x * self.factor

def build(input_shape, num_classes):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), Scaled(0.5),
                             keras.layers.Dense(num_classes, activation="softmax")])
"""


def test_a_model_keras_cannot_load_back_is_said_once_and_none_is_kept(workdir: Path) -> None:
    (workdir / "odd.py").write_text(UNSAVABLE, encoding="utf-8")
    args = ["study=deep_dnn", "n_trials=2", *tiny(workdir / "mlruns"), "~model", "~space"]
    done = run_cli("search.run", *args, "+model.builder=odd:build", cwd=workdir)
    assert done.returncode == 0, done.stderr
    (warning,) = [line for line in done.stdout.splitlines() if "cannot save" in line]
    assert "load it back" in warning and "register_keras_serializable" in warning
    study = study_in(workdir)
    assert [t.state for t in study.trials] == [COMPLETE, COMPLETE]
    assert not any(Attr.MODEL_ID in t.user_attrs for t in study.trials)
    client = client_in(workdir)
    assert not client.search_registered_models()
    experiment = client.get_experiment_by_name("deep_dnn")
    assert experiment is not None
    assert not client.search_logged_models([experiment.experiment_id])
