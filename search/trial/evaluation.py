"""Test-set evaluation: accuracy, NLL and calibration, deterministic and with MC Dropout.

MC Dropout done right (the course notebook's cell never turned dropout on at inference):
N stochastic forward passes with every dropout layer in training mode and everything else,
BatchNorm included, in inference mode; the class probabilities are averaged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from search.config.task import Task

__all__ = [
    "AlwaysTraining",
    "classification_metrics",
    "evaluate_test_set",
    "expected_calibration_error",
    "mc_dropout_model",
    "mc_predict",
    "predict_eager",
]

DROPOUT_LAYERS = (keras.layers.Dropout, keras.layers.AlphaDropout)
_EPS = 1e-12


def classification_metrics(probs: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, float]:
    """Accuracy, mean negative log-likelihood and expected calibration error."""
    labels = labels.astype(int)
    picked = probs[np.arange(len(labels)), labels]
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
        "nll": float(-np.mean(np.log(np.clip(picked, _EPS, 1.0)))),
        "ece": expected_calibration_error(probs, labels, bins),
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """ECE: |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def mc_dropout_model(model: keras.Model) -> keras.Model:
    """The same layers (shared weights) re-applied with dropout on and BatchNorm off.

    Works for models whose top level is a chain (each layer feeds the next: a
    ``keras.Sequential``, or what the builders in ``models/`` make); a nested backbone
    counts as one layer.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not isinstance(model, keras.Sequential):
        chain = model.layers
        for previous, layer in zip(chain, chain[1:], strict=False):
            if layer.input is not previous.output:
                raise ValueError(
                    f"MC Dropout needs a chain model; {layer.name} is not fed by {previous.name}"
                )
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = inputs
    for layer in layers:
        x = AlwaysTraining(layer)(x) if isinstance(layer, DROPOUT_LAYERS) else layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_mc")


class AlwaysTraining(keras.layers.Layer):
    """Calls the wrapped layer in training mode whatever mode the model runs in.

    (A ``training=True`` given while building a functional graph is overridden by the mode
    ``predict`` runs in, so a dropout layer has to be wrapped to stay on.)
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs: object) -> None:
        super().__init__(name=f"{layer.name}_always_on", **kwargs)
        self.layer = layer

    def call(self, inputs: object) -> object:
        return self.layer(inputs, training=True)


def mc_predict(
    model: keras.Model, x: np.ndarray, samples: int, batch_size: int = 1024
) -> np.ndarray:
    """``samples`` stochastic passes: an array of shape (samples, len(x), classes)."""
    mc = mc_dropout_model(model)
    return np.stack([predict_eager(mc, x, batch_size) for _ in range(samples)])


def predict_eager(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """``model.predict`` without tracing a predict function: a few eager calls are much
    cheaper than a graph for one pass over a test set (the trace costs ~0.3 s per model)."""
    out = [
        keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out)


def evaluate_test_set(
    model: keras.Model,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    task: Task,
    *,
    mc_samples: int,
    bins: int,
) -> dict[str, float]:
    """The test set's figures, batch by batch (the set need not fit in memory; only the
    model's outputs are kept). A classification: ``test_accuracy``, ``test_nll``,
    ``test_ece``; a regression: ``test_loss`` and ``test_<metric>`` for each compiled
    metric. With ``mc_samples`` > 0 the same figures of the MC Dropout mean as ``mc_test_*``
    (and, for a classification, the mean ``mc_predictive_entropy``)."""
    mc = mc_dropout_model(model) if mc_samples > 0 else None
    outs, mc_outs, labels = [], [], []
    for x, y in batches:
        outs.append(predict_eager(model, x))
        if mc is not None:
            mc_outs.append(np.mean([predict_eager(mc, x) for _ in range(mc_samples)], axis=0))
        labels.append(y)
    if not labels:
        return {}
    y_all = np.concatenate(labels)
    figures = _classification if task.classification else _regression
    out = {f"test_{k}": v for k, v in figures(np.concatenate(outs), y_all, task, bins).items()}
    if mc is not None:
        mean = np.concatenate(mc_outs)
        out.update({f"mc_test_{k}": v for k, v in figures(mean, y_all, task, bins).items()})
        if task.classification:
            probs = _probabilities(mean)
            entropy = -np.sum(probs * np.log(np.clip(probs, _EPS, 1.0)), axis=1)
            out["mc_predictive_entropy"] = float(entropy.mean())
    return out


def _classification(out: np.ndarray, y: np.ndarray, task: Task, bins: int) -> dict[str, float]:
    return classification_metrics(_probabilities(out), y.reshape(-1), bins)


def _probabilities(out: np.ndarray) -> np.ndarray:
    """Class probabilities from a model's outputs: a sigmoid unit as two classes, logits
    (rows that are not distributions) through a softmax."""
    out = out.reshape(len(out), -1)
    if out.shape[1] == 1:
        p = out[:, 0] if (0 <= out).all() and (out <= 1).all() else 1 / (1 + np.exp(-out[:, 0]))
        return np.stack([1 - p, p], axis=1)
    if (out >= 0).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        return out
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def _regression(out: np.ndarray, y: np.ndarray, task: Task, bins: int) -> dict[str, float]:
    """The loss and each compiled metric on the whole set (Keras' own functions)."""
    target = y.reshape(out.shape) if y.size == out.size else y
    figures = {"loss": _mean_of(keras.losses.get(task.loss), target, out)}
    for name in task.metrics:
        figures[name] = _mean_of(keras.metrics.get(name), target, out)
    return figures


def _mean_of(fn: Any, y: np.ndarray, out: np.ndarray) -> float:
    if isinstance(fn, keras.metrics.Metric):
        fn.reset_state()
        fn.update_state(y, out)
        return float(keras.ops.convert_to_numpy(fn.result()))
    return float(np.mean(keras.ops.convert_to_numpy(fn(y, out))))
