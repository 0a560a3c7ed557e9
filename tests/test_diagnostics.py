"""Diagnostics: chance-level detection, dead ReLUs, gradient norms."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest

from search.models import build_dense_net
from search.trial import (
    ChanceDetector,
    StuckAtChance,
    dead_unit_fractions,
    gradient_norms,
    gradient_summary,
)

X = np.random.default_rng(0).random((128, 8, 8, 1)).astype("float32")
Y = np.arange(128) % 10
CHANCE = {"val_accuracy": 0.1, "val_loss": math.log(10)}
LEARNING = {"val_accuracy": 0.4, "val_loss": 1.6}
MARGINS = {"accuracy_margin": 0.03, "loss_margin": 0.05}  # as in studies/harness.yaml


def test_chance_needs_consecutive_epochs_of_both_signs() -> None:
    detector = ChanceDetector(10, epochs=3, **MARGINS)
    detector.on_epoch_end(0, CHANCE)
    detector.on_epoch_end(1, CHANCE)
    detector.on_epoch_end(2, LEARNING)  # streak broken
    detector.on_epoch_end(3, CHANCE)
    detector.on_epoch_end(4, CHANCE)
    with pytest.raises(StuckAtChance, match="val_loss 2.3026"):
        detector.on_epoch_end(5, CHANCE)


def test_a_loss_worse_than_guessing_counts_as_stuck() -> None:
    detector = ChanceDetector(10, epochs=3, **MARGINS)
    detector.on_epoch_end(0, {"val_accuracy": 0.097, "val_loss": 2.29})  # a mistake run's
    detector.on_epoch_end(1, {"val_accuracy": 0.097, "val_loss": 2.53})  # losses: around
    with pytest.raises(StuckAtChance):  # ln 10 and above it, never clearly below
        detector.on_epoch_end(2, {"val_accuracy": 0.1007, "val_loss": 2.31})


def test_chance_accuracy_with_a_falling_loss_is_not_stuck() -> None:
    detector = ChanceDetector(10, epochs=2, **MARGINS)
    for epoch, loss in enumerate([2.31, 2.20, 2.10, 2.00, 1.90]):  # from ln 10, then below it
        detector.on_epoch_end(epoch, {"val_accuracy": 0.1, "val_loss": loss})
    assert detector.streak == 0  # the loss fell below ln 10 - margin at epoch 1
    stuck = ChanceDetector(10, epochs=2, **MARGINS)  # the same accuracy with a flat loss
    stuck.on_epoch_end(0, CHANCE)
    with pytest.raises(StuckAtChance):
        stuck.on_epoch_end(1, CHANCE)


def test_dead_relus_are_counted_per_layer() -> None:
    model = build_dense_net((8, 8, 1), 10, depth=2, width=8, activation="relu")
    dense = model.get_layer("dense_1")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, np.full_like(bias, -100.0)])  # every unit of layer 1 dies
    fractions = dead_unit_fractions(model, X)
    assert fractions["dead_unit_fraction.relu_1"] == 1.0
    assert fractions["dead_unit_fraction.relu_2"] == 1.0  # its input is all zeros
    assert fractions["dead_unit_fraction"] == 1.0
    keras.utils.set_random_seed(0)
    fresh = build_dense_net((8, 8, 1), 10, depth=2, width=8, activation="relu")
    # centred inputs: an all-positive input kills some fresh units by chance (up to 0.5 seen)
    assert dead_unit_fractions(fresh, X - 0.5)["dead_unit_fraction"] < 0.25
    assert dead_unit_fractions(build_dense_net((8, 8, 1), 10, depth=2, width=8), X) == {}


def test_gradient_norms_show_vanishing_gradients_in_a_deep_sigmoid_net() -> None:
    keras.utils.set_random_seed(0)
    sigmoid = build_dense_net(
        (8, 8, 1), 10, depth=12, width=32, activation="sigmoid", initializer="glorot_uniform"
    )
    table = gradient_norms(sigmoid, X, Y)
    assert list(table["layer"]) == [f"dense_{i}/kernel" for i in range(1, 13)] + ["output/kernel"]
    summary = gradient_summary(table)
    assert summary["grad_norm_ratio"] < 0.01  # the first layer barely learns
    keras.utils.set_random_seed(0)
    elu = build_dense_net((8, 8, 1), 10, depth=12, width=32)
    assert gradient_summary(gradient_norms(elu, X, Y))["grad_norm_ratio"] > 0.05


def test_objective_prunes_a_trial_stuck_at_chance(tmp_path: Path) -> None:
    from search.data import splits_from_config
    from search.tracking import StudyTracker
    from search.trial import make_objective
    from tests.conftest import compose, tiny

    cfg = compose(
        "study=deep_dnn",
        *tiny(
            tmp_path / "mlruns",
            "train.epochs=6",
            "model.initializer=constant",
            "model.constant_value=0.0",  # every hidden unit outputs 0: uniform softmax
            "optimizer.name=sgd",
            "optimizer.learning_rate=1e-9",
        ),
    )
    tracker = StudyTracker.from_config(cfg)
    tracker.open()
    study = optuna.create_study(direction="maximize")
    study.optimize(make_objective(cfg, [], splits_from_config(cfg.dataset), tracker), n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["diagnosis"] == "stuck_at_chance"
    assert trial.user_attrs["metrics"]["epochs_trained"] == 3
    # the epoch that decided it is reported to Optuna (the pruning callback never saw it)
    assert sorted(trial.intermediate_values) == [0, 1, 2]
    run = tracker.client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.tags["diagnosis"] == "stuck_at_chance"
    assert run.data.tags["optuna.state"] == "PRUNED" and run.info.status == "FINISHED"
