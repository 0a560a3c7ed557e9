"""The course's deep dense net: ``depth`` hidden layers of ``width`` units."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from search.models.registry import register_builder

__all__ = ["ACTIVATIONS", "DROPOUTS", "INITIALIZERS", "build_dense_net"]

ACTIVATIONS = ("elu", "selu", "relu", "leaky_relu", "tanh", "sigmoid")
INITIALIZERS = ("he_normal", "lecun_normal", "glorot_uniform", "constant")
DROPOUTS = ("standard", "alpha")


@register_builder("dense")
def build_dense_net(
    input_shape: tuple[int, ...],
    num_classes: int | None,
    depth: int = 20,
    width: int = 100,
    activation: str = "elu",
    initializer: str = "he_normal",
    batch_norm: bool = False,
    input_batch_norm: bool = False,
    dropout_rate: float = 0.0,
    dropout: str = "standard",
    standardize: bool = False,
    input_stats: Sequence[np.ndarray] | None = None,
    constant_value: float = 0.05,
    output_bias: float = 0.0,
) -> keras.Model:
    """Flatten [-> standardise] [-> BN] -> depth x (Dense [-> BN] -> act [-> drop]) -> softmax
    over ``num_classes`` (``None``: a regression, one linear output starting at
    ``output_bias``: the harness passes the training targets' mean).

    - ``batch_norm``: BatchNorm after every dense layer (which then drops its bias, BN's beta
      replaces it), before the activation, as in the course notebook; ``input_batch_norm``
      adds one on the flattened input.
    - ``dropout``: ``standard`` (Dropout) or ``alpha`` (AlphaDropout, keeps SELU's
      self-normalisation), after every hidden layer when ``dropout_rate`` > 0.
    - ``standardize``: a Normalization layer with the training set's per-feature
      ``input_stats = (mean, variance)`` (what SELU needs), so the model standardises its own
      inputs at inference too.
    - ``initializer="constant"``: every weight starts at ``constant_value``, to show why the
      same value everywhere breaks symmetry-breaking.

    Returns an uncompiled model.
    """
    _check(depth, width, activation, initializer, dropout, dropout_rate)
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    if standardize:
        if input_stats is None:
            raise ValueError("standardize=True needs input_stats=(mean, variance)")
        mean, variance = input_stats
        x = keras.layers.Normalization(mean=mean, variance=variance, name="standardize")(x)
    if input_batch_norm:
        x = keras.layers.BatchNormalization(name="bn_input")(x)
    for i in range(1, depth + 1):
        x = keras.layers.Dense(
            width,
            kernel_initializer=_initializer(initializer, constant_value),
            use_bias=not batch_norm,
            name=f"dense_{i}",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        x = keras.layers.Activation(activation, name=f"{activation}_{i}")(x)
        if dropout_rate > 0:
            x = _dropout(dropout, dropout_rate, name=f"dropout_{i}")(x)
    if num_classes is None:
        start = keras.initializers.Constant(output_bias)
        outputs = keras.layers.Dense(1, bias_initializer=start, name="output")(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=f"dense_{depth}x{width}")


def _check(
    depth: int, width: int, activation: str, initializer: str, dropout: str, rate: float
) -> None:
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {rate}")
    for name, value, allowed in (
        ("activation", activation, ACTIVATIONS),
        ("initializer", initializer, INITIALIZERS),
        ("dropout", dropout, DROPOUTS),
    ):
        if value not in allowed:
            raise ValueError(f"model.{name} {value!r} is not one of {', '.join(allowed)}")


def _initializer(name: str, constant_value: float) -> keras.initializers.Initializer | str:
    if name == "constant":
        return keras.initializers.Constant(constant_value)
    return name


def _dropout(kind: str, rate: float, name: str) -> keras.layers.Layer:
    if kind == "alpha":
        return keras.layers.AlphaDropout(rate, name=name)
    return keras.layers.Dropout(rate, name=name)
