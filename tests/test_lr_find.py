"""The LR range test: the command, its MLflow run, a sane suggestion, and `auto` in trials."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from search.data import splits_from_config
from search.tracking import StudyTracker
from search.trial import EpochRecorder, find_learning_rate, fit_config, make_objective, suggest
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
    assert curve["lr"].iloc[0] == pytest.approx(1e-6)  # lr_find.min_lr
    assert curve["smoothed"].min() < curve["smoothed"].iloc[0]  # the loss fell on the way
    rate = run.data.metrics["suggested_lr"]
    assert rate == pytest.approx(suggest(curve, divisor=10.0, floor=1e-6))
    assert f"suggested learning rate: {rate:.3g} " in result.stdout


def test_suggested_rate_beats_a_tiny_rate_within_a_few_epochs(tmp_path: Path) -> None:
    overrides = tiny(
        tmp_path / "mlruns", "model.depth=5", "model.width=32", "diagnostics.enabled=false"
    )
    cfg = compose("study=deep_dnn", *overrides, "train.epochs=3", "train.patience=3")
    splits = splits_from_config(cfg.dataset)
    finding = find_learning_rate(cfg, splits)
    assert finding.curve["lr"].iloc[0] == pytest.approx(1e-6)
    assert finding.suggested_lr == pytest.approx(suggest(finding.curve, 10.0, 1e-6))
    scores = {}
    for rate in (finding.suggested_lr, 1e-5):
        cfg.optimizer.learning_rate = rate
        scores[rate] = fit_config(cfg, splits, EpochRecorder()).value
    assert scores[finding.suggested_lr] > scores[1e-5] + 0.1, scores


def test_auto_learning_rate_in_a_trial(tmp_path: Path) -> None:
    cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", "optimizer.learning_rate=auto"))
    tracker = StudyTracker.from_config(cfg)
    tracker.open()
    study = optuna.create_study(direction="maximize")
    objective = make_objective(cfg, [], splits_from_config(cfg.dataset), tracker)
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    run = tracker.client.get_run(trial.user_attrs["mlflow_run_id"])
    rate = float(run.data.params["optimizer.learning_rate"])
    assert run.data.params["optimizer.learning_rate_source"] == "lr_find"
    assert {"lr_find.png", "lr_find.csv"} <= {
        a.path for a in tracker.client.list_artifacts(run.info.run_id)
    }
    local = tracker.client.download_artifacts(run.info.run_id, "lr_find.csv", str(tmp_path))
    assert rate == pytest.approx(suggest(pd.read_csv(local), divisor=10.0, floor=1e-6))
    assert trial.user_attrs["config"]["optimizer"]["learning_rate"] == pytest.approx(rate)
    trained_at = tracker.client.get_metric_history(run.info.run_id, "learning_rate")
    assert trained_at and all(m.value == pytest.approx(rate, rel=1e-6) for m in trained_at)
    seconds = run.data.metrics["lr_find_seconds"]
    assert seconds == pytest.approx(trial.user_attrs["lr_find_seconds"])
    assert seconds < (run.info.end_time - run.info.start_time) / 1000  # part of the trial
