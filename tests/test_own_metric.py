"""``metric``, ``direction``, ``train.loss`` and ``train.metrics`` honoured end to end
(issue 14): a study that minimises ``val_loss``, a regression on diabetes, and the checks
that refuse a metric and direction that do not go together. In-process, tiny studies."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from search.cli import HarnessError
from search.config import check_config, task_of
from search.export import export_study
from search.run import run_study
from search.train import train_exported
from tests.conftest import compose

TINY = ["model.depth=2", "model.width=16", "train.batch_size=64", "n_trials=3"]


def _runs(mlruns: Path, name: str) -> list[object]:
    client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], "tags.`search.role` = 'trial'"))


def test_a_study_that_minimises_val_loss(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    mlruns = workdir / "mlruns"
    cfg = compose(
        "study=deep_dnn", "dataset=digits", *TINY, "train.epochs=6", "train.patience=1",
        "metric=val_loss", "direction=minimize", "study_name=lossy", f"mlruns_dir={mlruns}",
    )  # fmt: skip
    study = run_study(cfg)
    assert study.direction.name == "MINIMIZE"
    values = [t.value for t in study.trials if t.value is not None]
    assert study.best_value == min(values)
    for run in _runs(mlruns, "lossy"):
        history = pd.read_csv(
            MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}").download_artifacts(
                run.info.run_id,
                "history.csv",
                str(workdir),  # type: ignore[attr-defined]
            )
        )
        metrics = run.data.metrics  # type: ignore[attr-defined]
        best = int(history["val_loss"].idxmin())
        assert metrics["best_val_loss"] == pytest.approx(history["val_loss"].min())
        assert metrics["best_epoch"] == best  # early stopping in mode min picks it
        # patience 1: it stops one epoch after the lowest, unless the budget ends first (or
        # it was pruned: stuck at chance, say)
        if run.data.tags["optuna.state"] == "COMPLETE":  # type: ignore[attr-defined]
            assert len(history) in (best + 2, 6)
    best_yaml, _ = export_study(
        compose("study=deep_dnn", "study_name=lossy", f"mlruns_dir={mlruns}", config_name="export")
    )
    assert OmegaConf.load(best_yaml).metric == "val_loss"


def test_a_regression_runs_exports_and_retrains(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """diabetes with train.loss=mse metric=val_mae direction=minimize: a linear output,
    mae logged though train.metrics is not set, no chance level, test_mae at the end."""
    monkeypatch.chdir(workdir)
    mlruns = workdir / "mlruns"
    cfg = compose(
        "study=deep_dnn", "dataset=diabetes", *TINY, "train.epochs=5",
        "optimizer.learning_rate=0.01", "~space.optimizer", "train.loss=mse",
        "metric=val_mae", "direction=minimize",
        "study_name=sugar", f"mlruns_dir={mlruns}",
    )  # fmt: skip
    study = run_study(cfg)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    for run in _runs(mlruns, "sugar"):
        metrics = run.data.metrics  # type: ignore[attr-defined]
        assert {"best_val_mae", "test_mae", "test_loss"} <= set(metrics)
        assert "test_accuracy" not in metrics and "diagnosis" not in run.data.tags  # type: ignore[attr-defined]
        assert math.isfinite(metrics["test_mae"])
    best_yaml, _ = export_study(
        compose("study=deep_dnn", "study_name=sugar", f"mlruns_dir={mlruns}", config_name="export")
    )
    exported = compose(f"from={best_yaml}", config_name="train")
    from search.config import load_exported, with_defaults

    result = train_exported(with_defaults(load_exported(str(best_yaml)), exported))
    assert result.value == pytest.approx(study.best_value, rel=1e-4)  # same seed, same result


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["metric=val_loss"], "val_loss is better when lower: add direction=minimize"),
        (["direction=minimize"], "val_accuracy is better when higher: add direction=maximize"),
        (["metric=accuracy"], "not a validation figure.*metric=val_accuracy"),
        (["train.loss=mse"], "accuracy means nothing for a regression"),
        (["train.loss=categorical_crossentropy"], "needs one-hot labels.*sparse_categorical"),
        (["train.metrics=[accuracy,3]"], "train.metrics must be a list of Keras metric names"),
    ],
)
def test_a_metric_and_direction_that_do_not_go_together_are_refused(
    overrides: list[str], said: str
) -> None:
    with pytest.raises(HarnessError, match=said):
        check_config(compose("study=deep_dnn", "dataset=digits", *overrides))


def test_the_monitored_metric_is_always_logged() -> None:
    task = task_of(
        compose("study=deep_dnn", "train.loss=mse", "metric=val_mae", "direction=minimize")
    )
    assert task.metrics == ("mae",) and not task.classification and task.mode == "min"
    assert task.chance_off().startswith("train.loss=mse is a regression")
    classes = task_of(compose("study=deep_dnn", "train.metrics=[auc]", "metric=val_auc"))
    assert classes.metrics == ("auc",) and classes.chance_off()  # no accuracy logged


def test_an_unknown_keras_metric_is_refused_before_anything_exists(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    cfg = compose(
        "study=deep_dnn", "dataset=digits", *TINY, "train.metrics=[accuracy,f2_score]",
        f"mlruns_dir={workdir / 'mlruns'}",
    )  # fmt: skip
    with pytest.raises(HarnessError, match="train.metrics: 'f2_score' is not a Keras metric"):
        run_study(cfg)
    assert not (workdir / "mlruns" / "optuna.journal").exists()
