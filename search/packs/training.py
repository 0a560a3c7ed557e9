"""The per-member fit of a pack: each member's loss and metrics on its own, summed only
for the gradient (members share no weight, so each one's gradient is its own loss's).

``train_step`` and ``test_step`` return, per name, a ``[K]`` array: ``loss``, and each
compiled metric, averaged over the epoch's examples as Keras averages them for one model.
A stopped member (``active`` 0) adds nothing to the gradient: a NaN in it stays its own.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

__all__ = ["MEAN_METRICS", "PackMean", "PackTraining"]

# Keras' metrics that are a mean over examples, by the names a compile takes
MEAN_METRICS = {
    "accuracy": None,  # by the loss, as Keras resolves it
    "sparse_categorical_accuracy": keras.metrics.sparse_categorical_accuracy,
    "categorical_accuracy": keras.metrics.categorical_accuracy,
    "binary_accuracy": keras.metrics.binary_accuracy,
    "mae": keras.metrics.mean_absolute_error,
    "mean_absolute_error": keras.metrics.mean_absolute_error,
    "mse": keras.metrics.mean_squared_error,
    "mean_squared_error": keras.metrics.mean_squared_error,
}
ACCURACY_BY_LOSS = {
    "sparse_categorical_crossentropy": keras.metrics.sparse_categorical_accuracy,
    "categorical_crossentropy": keras.metrics.categorical_accuracy,
    "binary_crossentropy": keras.metrics.binary_accuracy,
}


class PackMean(keras.metrics.Metric):
    """A mean per member: sums ``[K]`` over a count of examples."""

    def __init__(self, members: int, name: str) -> None:
        super().__init__(name=name)
        self.total = self.add_variable(shape=(members,), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, sums: Any, count: Any) -> None:
        self.total.assign_add(sums)
        self.count.assign_add(ops.cast(count, "float32"))

    def result(self) -> Any:
        return ops.divide_no_nan(self.total, self.count)


class PackTraining(keras.Model):
    def __init__(self, members: int, loss: str, metrics: list[str]) -> None:
        super().__init__()
        self.members = members
        self.fresh_optimizer: list[Any] = []  # the optimizer's state before any step
        self.active = keras.Variable(np.ones(members, "float32"), trainable=False, name="active")
        self.member_loss = keras.losses.get(loss)
        self.member_metrics = {
            name: MEAN_METRICS[name] or ACCURACY_BY_LOSS.get(loss, keras.metrics.binary_accuracy)
            for name in metrics
        }
        self.trackers = [PackMean(self.members, name) for name in ["loss", *metrics]]

    def compile_pack(self, optimizer: Any, steps_per_execution: int, jit_compile: bool) -> None:
        self.compile(
            optimizer=optimizer, steps_per_execution=steps_per_execution, jit_compile=jit_compile
        )

    @property
    def metrics(self) -> list[Any]:
        return list(getattr(self, "trackers", []))

    def stop(self, k: int) -> None:
        """Member k trains no more (its weights stay as they are)."""
        active = ops.convert_to_numpy(self.active).copy()
        active[k] = 0.0
        self.active.assign(active)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            predicted = self(x, training=True)
            losses = self._member_losses(y, predicted)
            total = ops.sum(ops.where(self.active > 0, losses, ops.zeros_like(losses)))
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables, strict=True))
        return self._member_update(y, predicted, losses)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y = data[0], data[1]
        predicted = self(x, training=False)
        return self._member_update(y, predicted, self._member_losses(y, predicted))

    def _each(self, y: Any, predicted: Any) -> Any:
        """The targets for each member, ``[K, batch, ...]``; ``[K, batch, 1]`` against one
        output unit (a regression, a sigmoid), as Keras matches a solo model's ranks."""
        if len(y.shape) == len(predicted.shape) - 2 and predicted.shape[-1] == 1:
            y = ops.expand_dims(y, -1)
        return ops.broadcast_to(ops.expand_dims(y, 0), (self.members, *ops.shape(y)))

    def _member_losses(self, y: Any, predicted: Any) -> Any:
        per_example = self.member_loss(self._each(y, predicted), predicted)
        return ops.mean(ops.reshape(per_example, (self.members, -1)), axis=1)

    def _member_update(self, y: Any, predicted: Any, losses: Any) -> dict[str, Any]:
        batch = ops.shape(y)[0]
        self.trackers[0].update_state(losses * ops.cast(batch, losses.dtype), batch)
        for tracker, fn in zip(self.trackers[1:], self.member_metrics.values(), strict=True):
            values = ops.cast(fn(self._each(y, predicted), predicted), "float32")
            tracker.update_state(ops.sum(ops.reshape(values, (self.members, -1)), axis=1), batch)
        return {tracker.name: tracker.result() for tracker in self.trackers}
