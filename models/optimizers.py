"""Keras optimizers by name."""

from __future__ import annotations

import keras

__all__ = ["OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = ("sgd", "adam", "nadam", "rmsprop", "adamw")


def make_optimizer(
    name: str, learning_rate: float, momentum: float = 0.0, nesterov: bool = False
) -> keras.optimizers.Optimizer:
    """An optimizer; ``momentum`` applies to sgd and rmsprop, ``nesterov`` to sgd."""
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=nesterov)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=momentum)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "nadam":
        return keras.optimizers.Nadam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")
