"""Keras layers that hold K members' weights stacked on a leading axis and run them as one
op: a pack's step has as many ops as one model's.

Every tensor between layers is ``[K, batch, features]`` except before the first layer that
needs members apart: the shared input (``[batch, features]``), which the first
``PackedDense`` multiplies with all K kernels at once (stored ``[in, K, out]``: one matmul
of ``[batch, in] x [in, K*out]``); later kernels are ``[K, in, out]`` (one batched matmul).
Per-member vectors (biases, BatchNorm's statistics, dropout rates) are ``[K, 1, n]`` so one
``[K, 1, 1]`` learning rate broadcasts over every variable of the pack.

Each layer mirrors one layer type of a solo model: ``stack`` takes the K solo layers'
weights, ``member`` gives member k's back in the solo layer's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from search.packs.optimizers import SHARED

__all__ = [
    "PackedActivation",
    "PackedBatchNormalization",
    "PackedDense",
    "PackedDropout",
    "PackedFlatten",
    "PackedLayer",
    "PackedNormalization",
]


class PackedLayer(keras.layers.Layer):
    """A layer of a pack: K members' weights, stacked."""

    def __init__(self, members: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.members = members

    def stack(self, weights: Sequence[Sequence[np.ndarray]]) -> None:
        """Set every member's weights: ``weights[k]`` is member k's solo layer's list."""
        for i, variable in enumerate(self.weights):
            variable.assign(np.stack([np.asarray(w[i]) for w in weights]).reshape(variable.shape))

    def values(self) -> list[np.ndarray]:
        """Every member's weights, as arrays (one read of each variable)."""
        return [np.asarray(ops.convert_to_numpy(v)) for v in self.weights]

    def member(self, k: int, values: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Member k's weights in its solo layer's order and shapes (copies), from
        ``values`` (``values()``) or read now."""
        values = self.values() if values is None else values
        return [v[k].reshape(-1).copy() for v in values]

    def _per_member(self, name: str, n: int, trainable: bool = True) -> keras.Variable:
        return self.add_weight(
            shape=(self.members, 1, n), initializer="zeros", trainable=trainable, name=name
        )


class PackedFlatten(PackedLayer):
    """The shared input flattened: ``[batch, ...] -> [batch, features]``."""

    def call(self, x: Any) -> Any:
        return ops.reshape(x, (ops.shape(x)[0], -1))


def _split(x: Any, members: int) -> Any:
    """The shared input repeated for each member: ``[batch, n] -> [K, batch, n]``."""
    if len(x.shape) == 3:
        return x
    return ops.broadcast_to(ops.expand_dims(x, 0), (members, *ops.shape(x)))


class PackedDense(PackedLayer):
    """K Dense layers of ``units`` as one (batched) matmul, bias and activation. Every
    member has a bias, times its ``bias_on`` (0 for a member whose Dense has none: its bias
    stays 0, its gradient is 0), so members with and without batch norm share one pack."""

    def __init__(self, members: int, units: int, activation: str | None, **kwargs: Any) -> None:
        super().__init__(members, **kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.has_bias = [True] * members  # the solo layers' use_bias (``stack``)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.shared = len(input_shape) == 2  # the shared input: one matmul for all members
        self.inputs_dim = int(input_shape[-1])  # type: ignore[arg-type]
        k, n, m = self.members, self.inputs_dim, self.units
        shape = (n, k, m) if self.shared else (k, n, m)
        name = SHARED if self.shared else "kernel"  # the optimizer lays rates out by it
        self.kernel = self.add_weight(shape=shape, initializer="zeros", name=name)
        self.bias = self._per_member("bias", m)
        self.bias_on = self._per_member("bias_on", 1, trainable=False)

    def call(self, x: Any) -> Any:
        k, m = self.members, self.units
        if self.shared:
            flat = ops.matmul(x, ops.reshape(self.kernel, (self.inputs_dim, k * m)))
            y = ops.transpose(ops.reshape(flat, (-1, k, m)), (1, 0, 2))
        else:
            y = ops.matmul(x, self.kernel)
        return self.activation(ops.add(y, ops.multiply(self.bias, self.bias_on)))

    def stack(self, weights: Sequence[Sequence[np.ndarray]]) -> None:
        axis = 1 if self.shared else 0
        self.kernel.assign(np.stack([np.asarray(w[0]) for w in weights], axis=axis))
        self.has_bias = [len(w) > 1 for w in weights]
        zeros = np.zeros(self.units, "float32")
        biases = [np.asarray(w[1]) if len(w) > 1 else zeros for w in weights]
        self.bias.assign(np.stack(biases)[:, None, :])
        self.bias_on.assign(np.asarray(self.has_bias, "float32").reshape(-1, 1, 1))

    def values(self) -> list[np.ndarray]:
        return [np.asarray(ops.convert_to_numpy(v)) for v in (self.kernel, self.bias)]

    def member(self, k: int, values: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        values = self.values() if values is None else values
        kernel = values[0]
        out = [(kernel[:, k] if self.shared else kernel[k]).copy()]
        if self.has_bias[k]:
            out.append(values[1][k, 0].copy())
        return out


class PackedBatchNormalization(PackedLayer):
    """K BatchNormalization layers (last axis), each over its member's batch; a member
    without batch norm there (``on`` 0) passes its input through unchanged."""

    def __init__(
        self, members: int, momentum: float, epsilon: float, center: bool, scale: bool, **kw: Any
    ) -> None:
        super().__init__(members, **kw)
        self.momentum, self.epsilon, self.center, self.scale = momentum, epsilon, center, scale

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        n = int(input_shape[-1])  # type: ignore[arg-type]
        self.gamma = self._per_member("gamma", n) if self.scale else None
        self.beta = self._per_member("beta", n) if self.center else None
        self.moving_mean = self._per_member("moving_mean", n, trainable=False)
        self.moving_variance = self._per_member("moving_variance", n, trainable=False)
        self.on = self._per_member("on", 1, trainable=False)
        solo = (self.gamma, self.beta, self.moving_mean, self.moving_variance)
        self.own = [v for v in solo if v is not None]  # the solo layer's weights, in order

    def call(self, x: Any, training: bool | None = None) -> Any:
        x = _split(x, self.members)
        if training:
            mean, variance = ops.moments(x, axes=[1], keepdims=True)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            mean, variance = self.moving_mean, self.moving_variance
        y = ops.batch_normalization(
            x, mean, variance, axis=-1, offset=self.beta, scale=self.gamma, epsilon=self.epsilon
        )
        return ops.where(ops.greater(self.on, 0.0), y, x)

    def stack(self, weights: Sequence[Sequence[np.ndarray]]) -> None:
        for i, variable in enumerate(self.own):
            start = 1.0 if variable is self.gamma or variable is self.moving_variance else 0.0
            rows = [np.asarray(w[i]) if w else np.full(variable.shape[-1], start) for w in weights]
            variable.assign(np.stack(rows).reshape(variable.shape))
        on = np.asarray([1.0 if w else 0.0 for w in weights], "float32")
        self.on.assign(on.reshape(-1, 1, 1))

    def values(self) -> list[np.ndarray]:
        return [np.asarray(ops.convert_to_numpy(v)) for v in self.own]


class PackedNormalization(PackedLayer):
    """K fixed standardisations (Keras' Normalization given mean and variance)."""

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        n = int(input_shape[-1])  # type: ignore[arg-type]
        self.mean = self._per_member("mean", n, trainable=False)
        self.variance = self._per_member("variance", n, trainable=False)

    def call(self, x: Any) -> Any:
        x = _split(x, self.members)
        return ops.divide(
            ops.subtract(x, self.mean),
            ops.maximum(ops.sqrt(self.variance), keras.backend.epsilon()),
        )


class PackedActivation(PackedLayer):
    def __init__(self, members: int, activation: str, **kwargs: Any) -> None:
        super().__init__(members, **kwargs)
        self.activation = keras.activations.get(activation)

    def call(self, x: Any) -> Any:
        return self.activation(x)


ALPHA = 1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


class PackedDropout(PackedLayer):
    """K dropout layers, each with its own rate (a variable: rates change no graph);
    ``alpha``: AlphaDropout (keeps SELU's mean and variance). Members draw from one uniform
    draw per example and unit (common random numbers: members that differ only in their
    rate see the same noise, identical members train identically)."""

    def __init__(self, members: int, alpha: bool, seed: int | None = None, **kw: Any) -> None:
        super().__init__(members, **kw)
        self.alpha = alpha
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.rate = self._per_member("rate", 1, trainable=False)

    def stack(self, weights: Sequence[Sequence[np.ndarray]]) -> None:
        rates = [w[0] if w else 0.0 for w in weights]  # none: the member has no dropout here
        self.rate.assign(np.asarray(rates, "float32").reshape(-1, 1, 1))

    def member(self, k: int, values: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        return []  # the rate is the solo layer's config, not a weight

    def call(self, x: Any, training: bool | None = None) -> Any:
        if not training:
            return x
        draw = keras.random.uniform(ops.shape(x)[-2:], seed=self.seed_generator)
        x = _split(x, self.members)
        kept = ops.cast(ops.greater_equal(draw, self.rate), x.dtype)
        if not self.alpha:
            return x * kept / (1.0 - self.rate)
        a = ((1 - self.rate) * (1 + self.rate * ALPHA**2)) ** -0.5
        b = a * ALPHA * self.rate
        return a * (x * kept - ALPHA * (1 - kept)) + b
