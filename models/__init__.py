"""Model builders: plain functions from typed arguments to a keras.Model.

Nothing here knows about Optuna or MLflow. ``BUILDERS`` maps the ``model.builder`` name
of a study file to its function; the other ``model.*`` keys are its keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from search.models.dense import build_dense_net
from search.models.optimizers import OPTIMIZERS, make_optimizer
from search.models.transfer import build_transfer_net

__all__ = [
    "BUILDERS",
    "OPTIMIZERS",
    "build_dense_net",
    "build_model",
    "build_transfer_net",
    "make_optimizer",
]

BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "dense": build_dense_net,
    "transfer": build_transfer_net,
}


def build_model(
    builder: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any
) -> keras.Model:
    """Build the model a ``model`` config describes (``builder`` + its arguments)."""
    try:
        fn = BUILDERS[builder]
    except KeyError:
        raise ValueError(
            f"unknown model.builder {builder!r}; use one of {', '.join(BUILDERS)}"
        ) from None
    return fn(input_shape=input_shape, num_classes=num_classes, **kwargs)
