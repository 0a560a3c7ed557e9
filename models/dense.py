"""The course's deep dense net: ``depth`` hidden layers of ``width`` units."""

from __future__ import annotations

import keras

__all__ = ["build_dense_net"]


def build_dense_net(
    input_shape: tuple[int, ...],
    num_classes: int,
    depth: int = 20,
    width: int = 100,
    activation: str = "elu",
    initializer: str = "he_normal",
    batch_norm: bool = False,
    dropout_rate: float = 0.0,
) -> keras.Model:
    """Flatten -> depth x Dense(width) [-> BatchNorm] -> activation [-> Dropout] -> softmax.

    With ``batch_norm`` the dense layers drop their bias (BatchNorm's beta replaces it)
    and the activation follows the normalisation, as in the course notebook.
    Returns an uncompiled model.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i in range(1, depth + 1):
        x = keras.layers.Dense(
            width, kernel_initializer=initializer, use_bias=not batch_norm, name=f"dense_{i}"
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        x = keras.layers.Activation(activation, name=f"{activation}_{i}")(x)
        if dropout_rate > 0:
            x = keras.layers.Dropout(dropout_rate, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=f"dense_{depth}x{width}")
