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

from tests.conftest import run_cli, study_in


def _run_vgg16(workdir: Path, name: str, *settings: str) -> optuna.trial.FrozenTrial:
    """One random-init VGG16 trial on 256 digits through the CLI; returns the trial."""
    result = run_cli(
        "search.run",
        "study=transfer_vgg16",
        f"study_name={name}",
        "dataset=digits",
        "dataset.train_limit=256",
        "n_trials=1",
        "model.weights=null",
        "model.trainable_layers=-1",
        "space=null",
        *settings,
        f"mlruns_dir={workdir / 'mlruns'}",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    (trial,) = study_in(workdir, name).trials
    return trial


@pytest.mark.slow
def test_the_notebook_mistake_is_stuck_at_chance(workdir: Path) -> None:
    trial = _run_vgg16(
        workdir,
        "vgg16_mistake",
        "model.preprocess=false",
        "optimizer.name=sgd",
        "optimizer.learning_rate=0.05",
        "optimizer.momentum=0.9",
        "train.epochs=6",
    )
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["diagnosis"] == "stuck_at_chance"
    assert trial.user_attrs["metrics"]["epochs_trained"] == 3


@pytest.mark.slow
def test_the_fixed_configuration_is_not(workdir: Path) -> None:
    trial = _run_vgg16(
        workdir,
        "vgg16_fixed",
        "model.preprocess=true",
        "optimizer.name=nadam",
        "optimizer.learning_rate=1e-4",
        "train.epochs=4",
    )
    assert "diagnosis" not in trial.user_attrs
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value > 0.2  # chance is 0.1
