"""The objective in-process: each outcome maps to an Optuna state and a closed MLflow run."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from search.config import parse_space
from search.data import splits_from_config
from search.tracking import StudyTracker
from search.trial import make_objective
from tests.conftest import compose, tiny


def _setup(tmp_path: Path, *extra: str, search: bool = True) -> tuple[object, ...]:
    cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", *extra))
    specs = parse_space(cfg.space) if search else []
    tracker = StudyTracker.from_config(cfg)
    tracker.open()
    objective = make_objective(cfg, specs, splits_from_config(cfg.dataset), tracker)
    return cfg, tracker, objective


def test_pruned_trial_closes_its_run_as_pruned(tmp_path: Path) -> None:
    _, tracker, objective = _setup(tmp_path, "train.epochs=3")
    # A threshold no accuracy can reach: the pruning callback stops the fit after epoch 0.
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5)
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    client = MlflowClient(tracker.client.tracking_uri)
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["optuna.state"] == "PRUNED"
    assert run.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [0]
    assert "test_accuracy" not in run.data.metrics  # the test set is for finished trials only
    metrics = trial.user_attrs["metrics"]
    assert metrics["epochs_trained"] == 1 and "test_accuracy" not in metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "config.yaml",
        "history.csv",
    }


def test_diverged_trial_is_pruned_with_its_diagnosis(tmp_path: Path) -> None:
    _, tracker, objective = _setup(
        tmp_path, "optimizer.name=sgd", "optimizer.learning_rate=1e6", search=False
    )
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert study.trials[0].intermediate_values == {0: pytest.approx(study.trials[0].value)}
    run = tracker.client.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["diagnosis"] == "diverged"
    assert run.data.tags["optuna.state"] == "PRUNED"
    assert "loss became nan" in run.data.tags["error"].lower()
    assert study.trials[0].user_attrs["diagnosis"] == "diverged"
    assert study.trials[0].user_attrs["error"] == run.data.tags["error"]


def test_fixed_trial_runs_without_a_study(tmp_path: Path) -> None:
    cfg, tracker, objective = _setup(tmp_path)
    params = {
        "optimizer.learning_rate": 3e-3,
        "model.batch_norm": True,
        "model.dropout_rate": 0.0,
    }
    value = objective(optuna.trial.FixedTrial(params))  # type: ignore[operator]
    (run,) = tracker.client.search_runs(
        [tracker.experiment_id], filter_string="tags.`search.role` = 'trial'"
    )
    curve = tracker.client.get_metric_history(run.info.run_id, "val_accuracy")
    assert len(curve) == 2 and value == pytest.approx(max(m.value for m in curve))
    assert value > 0.3  # 2 epochs on digits learn something (chance: 0.1)
    assert run.data.params["model.batch_norm"] == "True"
    assert float(run.data.params["optimizer.learning_rate"]) == pytest.approx(3e-3)
    assert run.data.metrics["best_val_accuracy"] == pytest.approx(value)
    assert run.info.run_name.startswith("t000 lr=0.003 bn=1 drop=0")
