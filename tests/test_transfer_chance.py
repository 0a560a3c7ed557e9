"""The course notebook's VGG16 mistake is diagnosed as stuck at chance; a fixed run is not.

Offline there are no ImageNet weights, so both runs start from random weights on 256
digits upsampled to 32x32 RGB. The mistake as in the notebook: raw 0-255 pixels (no
``preprocess_input``), the whole backbone trainable, the deep ReLU head, SGD 0.05 with
momentum 0.9. The fixed run: ``preprocess_input`` inside the model and, because a
random-init VGG16 (no BatchNorm) must be trained from scratch here, Nadam at 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli

COMMON = [
    "study=transfer_vgg16",
    "dataset=digits",
    "dataset.train_limit=256",
    "n_trials=1",
    "model.weights=null",
    "model.trainable_layers=-1",
    "space=null",
]


def _only_trial(workdir: Path, name: str) -> optuna.trial.FrozenTrial:
    (trial,) = optuna.load_study(
        study_name=name, storage=f"sqlite:///{workdir}/mlruns/optuna.db"
    ).trials
    return trial


@pytest.mark.slow
def test_the_notebook_mistake_is_stuck_at_chance(workdir: Path) -> None:
    result = run_cli(
        "search.run",
        *COMMON,
        "study_name=vgg16_mistake",
        "model.preprocess=false",
        "optimizer.name=sgd",
        "optimizer.learning_rate=0.05",
        "optimizer.momentum=0.9",
        "train.epochs=6",
        f"mlruns_dir={workdir / 'mlruns'}",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    trial = _only_trial(workdir, "vgg16_mistake")
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["diagnosis"] == "stuck_at_chance"
    assert trial.user_attrs["metrics"]["epochs_trained"] == 3


@pytest.mark.slow
def test_the_fixed_configuration_is_not(workdir: Path) -> None:
    result = run_cli(
        "search.run",
        *COMMON,
        "study_name=vgg16_fixed",
        "model.preprocess=true",
        "optimizer.name=nadam",
        "optimizer.learning_rate=1e-4",
        "train.epochs=4",
        f"mlruns_dir={workdir / 'mlruns'}",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    trial = _only_trial(workdir, "vgg16_fixed")
    assert "diagnosis" not in trial.user_attrs
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value > 0.2  # chance is 0.1
