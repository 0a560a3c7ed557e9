"""A small CNN: a user's own builder. It takes input_shape, num_classes and its own keys
(model.filters, ...) and returns a keras.Model; the harness compiles and trains it."""

from __future__ import annotations

import keras


def build_cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    filters: int = 16,
    dense_units: int = 32,
    dropout_rate: float = 0.0,
) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(filters * 2, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(dense_units, activation="relu"),
            keras.layers.Dropout(dropout_rate),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="small_cnn",
    )
