"""The LR range test: the command, its MLflow run, a sane suggestion, and `auto` in trials."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from search.callbacks import EpochRecorder
from search.data import splits_from_config
from search.lr_find import find_learning_rate, suggest
from search.objective import make_objective
from search.tracking import StudyTracker
from search.training import fit_config
from tests.conftest import compose, run_cli, tiny


def test_suggestion_is_the_minimum_divided() -> None:
    curve = pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2, 1e-1], "smoothed": [2.3, 1.5, 1.0, 9.0]})
    assert suggest(curve, divisor=10.0, floor=1e-6) == pytest.approx(1e-3)
    assert suggest(curve, divisor=1e6, floor=1e-6) == pytest.approx(1e-6)


def test_command_logs_plot_and_curve_and_prints_the_rate(workdir: Path) -> None:
    result = run_cli(
        "search.lr_find", "study=deep_dnn", *tiny(workdir / "mlruns", "model.depth=5"), cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert "suggested learning rate:" in result.stdout
    client = MlflowClient(f"sqlite:///{workdir}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("deep_dnn")
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.role` = 'lr_find'"
    )
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "lr_find.png",
        "lr_find.csv",
    }
    curve = pd.read_csv(client.download_artifacts(run.info.run_id, "lr_find.csv", str(workdir)))
    assert curve["lr"].is_monotonic_increasing and len(curve) >= 20
    assert 1e-5 < run.data.metrics["suggested_lr"] < 1.0


def test_suggested_rate_beats_a_tiny_rate_within_a_few_epochs(tmp_path: Path) -> None:
    overrides = tiny(
        tmp_path / "mlruns", "model.depth=5", "model.width=32", "diagnostics.enabled=false"
    )
    cfg = compose("study=deep_dnn", *overrides, "train.epochs=3", "train.patience=3")
    splits = splits_from_config(cfg.dataset)
    finding = find_learning_rate(cfg, splits)
    scores = {}
    for rate in (finding.suggested_lr, 1e-5):
        cfg.optimizer.learning_rate = rate
        scores[rate] = fit_config(cfg, splits, EpochRecorder()).best_val_accuracy
    assert scores[finding.suggested_lr] > scores[1e-5] + 0.1, scores


def test_auto_learning_rate_in_a_trial(tmp_path: Path) -> None:
    cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", "optimizer.learning_rate=auto"))
    tracker = StudyTracker(str(cfg.tracking_uri), str(cfg.artifact_root), str(cfg.study_name))
    tracker.open()
    study = optuna.create_study(direction="maximize")
    objective = make_objective(cfg, [], splits_from_config(cfg.dataset), tracker)
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    run = tracker.client.get_run(trial.user_attrs["mlflow_run_id"])
    rate = float(run.data.params["optimizer.learning_rate"])
    assert run.data.params["optimizer.learning_rate_source"] == "lr_find"
    assert 0 < rate < 10
    assert trial.user_attrs["config"]["optimizer"]["learning_rate"] == pytest.approx(rate)
    assert run.data.metrics["lr_find_seconds"] > 0
    assert "lr_find.png" in {a.path for a in tracker.client.list_artifacts(run.info.run_id)}
