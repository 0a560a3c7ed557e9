"""Evaluation: metrics on hand-made probabilities, MC Dropout really stochastic."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from search.config import Task
from search.models import build_dense_net
from search.trial import (
    classification_metrics,
    evaluate_test_set,
    expected_calibration_error,
    mc_predict,
)

CLASSES = Task("sparse_categorical_crossentropy", ("accuracy",), "val_accuracy", True)
X = np.random.default_rng(0).random((64, 8, 8, 1)).astype("float32")
Y = np.arange(64) % 10
BINS = 15  # as in studies/harness.yaml


def test_metrics_on_known_probabilities() -> None:
    perfect = np.eye(10)[Y]
    assert classification_metrics(perfect, Y, BINS) == pytest.approx(
        {"accuracy": 1.0, "nll": 0.0, "ece": 0.0}, abs=1e-9
    )
    uniform = np.full((64, 10), 0.1)
    metrics = classification_metrics(uniform, Y, BINS)
    assert metrics["nll"] == pytest.approx(math.log(10))
    assert metrics["accuracy"] == pytest.approx(7 / 64)  # argmax 0; 7 of the 64 labels are 0
    assert metrics["ece"] == pytest.approx(abs(7 / 64 - 0.1))  # one bin, confidence 0.1


def test_ece_of_overconfident_predictions() -> None:
    probs = np.full((4, 2), 0.2)
    probs[:, 0] = 0.8  # always class 0 at confidence 0.8
    labels = np.array([0, 0, 1, 1])  # right half the time
    assert expected_calibration_error(probs, labels, BINS) == pytest.approx(0.3)


def test_mc_passes_differ_with_dropout_and_not_without() -> None:
    keras.utils.set_random_seed(0)
    with_dropout = build_dense_net((8, 8, 1), 10, depth=3, width=32, dropout_rate=0.3)
    passes = mc_predict(with_dropout, X, samples=5)
    assert passes.shape == (5, 64, 10)
    assert not np.allclose(passes[0], passes[1])
    deterministic = with_dropout.predict(X, verbose=0)
    assert not np.allclose(passes.mean(axis=0), deterministic)

    no_dropout = build_dense_net((8, 8, 1), 10, depth=3, width=32, batch_norm=True)
    passes = mc_predict(no_dropout, X, samples=3)
    np.testing.assert_allclose(passes[0], passes[2], rtol=1e-6)
    np.testing.assert_allclose(passes[0], no_dropout.predict(X, verbose=0), rtol=1e-5)


def test_alpha_dropout_is_active_and_batch_norm_stays_in_inference_mode() -> None:
    keras.utils.set_random_seed(1)
    model = build_dense_net(
        (8, 8, 1), 10, depth=2, width=16, batch_norm=True, dropout_rate=0.2, dropout="alpha"
    )
    bn = model.get_layer("bn_1")
    before = [w.copy() for w in bn.get_weights()]
    passes = mc_predict(model, X, samples=2)
    assert not np.allclose(passes[0], passes[1])
    for old, new in zip(before, bn.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # moving statistics untouched


def test_evaluate_test_set_reports_both_views() -> None:
    model = build_dense_net((8, 8, 1), 10, depth=2, width=16, dropout_rate=0.2)
    out = evaluate_test_set(
        model, [(X[:40], Y[:40]), (X[40:], Y[40:])], CLASSES, mc_samples=4, bins=BINS
    )
    assert set(out) == {
        "test_accuracy",
        "test_nll",
        "test_ece",
        "mc_test_accuracy",
        "mc_test_nll",
        "mc_test_ece",
        "mc_predictive_entropy",
    }
    deterministic = classification_metrics(model.predict(X, verbose=0), Y, BINS)
    assert out["test_accuracy"] == pytest.approx(deterministic["accuracy"])
    assert out["test_nll"] == pytest.approx(deterministic["nll"], rel=1e-4)
    assert out["mc_test_nll"] != pytest.approx(out["test_nll"], rel=1e-6)  # dropout was on
    plain = evaluate_test_set(model, [(X, Y)], CLASSES, mc_samples=0, bins=BINS)
    assert plain == pytest.approx({k: out[k] for k in ("test_accuracy", "test_nll", "test_ece")})


def test_a_regression_reports_its_loss_and_metrics_on_the_test_set() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0])).astype("float32")
    model = build_dense_net((4,), None, depth=1, width=8, dropout_rate=0.2)
    task = Task(loss="mse", metrics=("mae",), monitor="val_mae", maximize=False)
    out = evaluate_test_set(model, [(x, y)], task, mc_samples=3, bins=BINS)
    assert set(out) == {"test_loss", "test_mae", "mc_test_loss", "mc_test_mae"}
    pred = model.predict(x, verbose=0).reshape(-1)
    assert out["test_mae"] == pytest.approx(float(np.mean(np.abs(pred - y))), rel=1e-5)
    assert out["test_loss"] == pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-5)
