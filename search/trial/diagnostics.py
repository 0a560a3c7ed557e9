"""Trial diagnostics: stuck at chance, dead ReLUs, gradient health.

What a student should see in the MLflow comparison without opening a notebook: a run
that never left chance level (the course's VGG16 on raw pixels), a net whose ReLUs died,
gradients that vanish or explode across depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import pandas as pd

from search.study.outcome import STUCK_AT_CHANCE, Diagnosed

__all__ = [
    "ChanceDetector",
    "StuckAtChance",
    "dead_unit_fractions",
    "gradient_norms",
    "gradient_summary",
]


class StuckAtChance(Diagnosed):
    """Validation accuracy and loss sat at chance level for several epochs in a row."""

    diagnosis = STUCK_AT_CHANCE


class ChanceDetector(keras.callbacks.Callback):
    """Stops a fit that is no better than chance: validation accuracy within
    ``accuracy_margin`` of 1/C *and* validation loss no lower than ln C - ``loss_margin``
    (uniform guessing scores ln C; a loss above it is worse than guessing, not better).

    Both must hold for ``epochs`` consecutive epochs (the course notebook's VGG16 sat at
    loss 2.3026 = ln 10 and accuracy 0.10 for all five epochs). A loss clearly below ln C
    means the model is learning something even while its accuracy is still at chance.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        epochs: int,
        accuracy_margin: float,
        loss_margin: float,
        monitor: str = "val",
    ) -> None:
        super().__init__()
        self.chance_accuracy = 1.0 / num_classes
        self.chance_loss = math.log(num_classes)
        self.epochs, self.accuracy_margin, self.loss_margin = epochs, accuracy_margin, loss_margin
        self.prefix = f"{monitor}_" if monitor else ""
        self.streak = 0

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        accuracy = logs.get(f"{self.prefix}accuracy")
        loss = logs.get(f"{self.prefix}loss")
        if accuracy is None or loss is None:
            return
        at_chance = (
            abs(float(accuracy) - self.chance_accuracy) <= self.accuracy_margin
            and float(loss) >= self.chance_loss - self.loss_margin
        )
        self.streak = self.streak + 1 if at_chance else 0
        if self.streak >= self.epochs:
            raise StuckAtChance(
                f"stuck at chance for {self.streak} epochs: {self.prefix}accuracy "
                f"{float(accuracy):.4f} (chance {self.chance_accuracy:.4f}), {self.prefix}loss "
                f"{float(loss):.4f} (ln {round(1 / self.chance_accuracy)} = {self.chance_loss:.4f})"
            )


def _is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return True
    activation = getattr(layer, "activation", None)
    return activation is keras.activations.relu


def dead_unit_fractions(model: keras.Model, x: np.ndarray) -> dict[str, float]:
    """Per ReLU layer (top level) and overall: the fraction of units that output zero for
    every example of ``x``. Empty when the model has no ReLU layer."""
    layers = [layer for layer in model.layers if _is_relu(layer)]
    if not layers:
        return {}
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # Sequential too
    probe = keras.Model(inputs, [layer.output for layer in layers])
    outputs = probe(x, training=False)
    if len(layers) == 1:
        outputs = [outputs]
    outputs = [keras.ops.convert_to_numpy(out) for out in outputs]
    fractions: dict[str, float] = {}
    dead_total = units_total = 0
    for layer, out in zip(layers, outputs, strict=True):
        dead = np.all(out.reshape(len(out), -1) <= 0.0, axis=0)
        fractions[f"dead_unit_fraction.{layer.name}"] = float(dead.mean())
        dead_total += int(dead.sum())
        units_total += dead.size
    fractions["dead_unit_fraction"] = dead_total / units_total
    return fractions


def gradient_norms(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    loss_fn: Callable[[Any, Any], Any] = keras.losses.sparse_categorical_crossentropy,
) -> pd.DataFrame:
    """The gradient of ``loss_fn`` (the compiled loss) for every trainable kernel on one
    batch, first to last.

    Columns: ``layer`` (the variable's path), ``norm``. Inference mode, so BatchNorm's
    moving statistics are not touched by the probe.
    """
    import tensorflow as tf

    kernels = [v for v in model.trainable_variables if v.name == "kernel"]
    with tf.GradientTape() as tape:
        out = model(x, training=False)
        loss = keras.ops.mean(loss_fn(y, out))
    grads = tape.gradient(loss, [v.value for v in kernels])
    norms = [float(tf.norm(g)) if g is not None else 0.0 for g in grads]
    return pd.DataFrame({"layer": [v.path for v in kernels], "norm": norms})


def gradient_summary(table: pd.DataFrame, suffix: str = "") -> dict[str, float]:
    """``grad_norm_first_layer``, ``grad_norm_last_layer``, their ratio and the global norm."""
    if table.empty:
        return {}
    first, last = float(table["norm"].iloc[0]), float(table["norm"].iloc[-1])
    return {
        f"grad_norm_first_layer{suffix}": first,
        f"grad_norm_last_layer{suffix}": last,
        f"grad_norm_ratio{suffix}": first / last if last > 0 else math.inf,
        f"grad_norm_global{suffix}": float(np.sqrt(np.sum(table["norm"] ** 2))),
    }
