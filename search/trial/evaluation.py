"""Test-set evaluation: accuracy, NLL and calibration, deterministic and with MC Dropout.

MC Dropout done right (the course notebook's cell never turned dropout on at inference):
N stochastic forward passes with every dropout layer in training mode and everything else,
BatchNorm included, in inference mode; the class probabilities are averaged.
"""

from __future__ import annotations

import keras
import numpy as np

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

    Works for models whose top level is a chain (each layer feeds the next), which is what
    the builders in ``models/`` make; a nested backbone counts as one layer.
    """
    layers = model.layers
    for previous, layer in zip(layers, layers[1:], strict=False):
        if layer.input is not previous.output:
            raise ValueError(
                f"MC Dropout needs a chain model; {layer.name} is not fed by {previous.name}"
            )
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = inputs
    for layer in layers[1:]:
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
    model: keras.Model, x: np.ndarray, y: np.ndarray, *, mc_samples: int, bins: int
) -> dict[str, float]:
    """``test_accuracy``, ``test_nll``, ``test_ece``; with ``mc_samples`` > 0 also the
    ``mc_test_*`` figures and the mean ``mc_predictive_entropy``."""
    probs = predict_eager(model, x)
    out = {f"test_{k}": v for k, v in classification_metrics(probs, y, bins).items()}
    if mc_samples > 0:
        mean = mc_predict(model, x, mc_samples).mean(axis=0)
        out.update({f"mc_test_{k}": v for k, v in classification_metrics(mean, y, bins).items()})
        entropy = -np.sum(mean * np.log(np.clip(mean, _EPS, 1.0)), axis=1)
        out["mc_predictive_entropy"] = float(entropy.mean())
    return out
