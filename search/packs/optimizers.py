"""Keras' optimizers for a pack: one learning rate (and SGD momentum) per member.

Every variable of a pack has its members on its first axis and rank 3 (``[K, ., .]``), so a
``[K, 1, 1]`` learning rate broadcasts over all of them and each member's update is the one
Keras computes for it alone. A member that stopped gets a learning rate (and momentum) of
0: its weights stay as they are. Adam's and Nadam's bias corrections count each member's
own steps (from ``member_start``, the pack's step at which it joined), so a member that
takes a freed place in a running pack trains as it would from its first step alone.
The whole update runs as one XLA-compiled function (``CompiledUpdate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

__all__ = [
    "OPTIMIZERS",
    "SHARED",
    "CompiledUpdate",
    "PackedSGD",
    "packed_optimizer",
    "set_member_rates",
]

OPTIMIZERS = ("sgd", "adam", "nadam", "rmsprop")  # AdamW decays with a rate of its own
SHARED = "shared_kernel"  # the first layer's kernel, members on axis 1 (``PackedDense``)


def _for(variable: Any, per_member: Any) -> Any:
    """A ``[K, 1, 1]`` figure laid out for ``variable`` (its members on axis 0 or 1)."""
    return _laid_out(str(getattr(variable, "path", variable.name)), per_member)


def _laid_out(path: str, per_member: Any) -> Any:
    if path.split(":")[0].endswith(SHARED):
        return ops.reshape(per_member, (1, -1, 1))
    return per_member


class CompiledUpdate:
    """Mixed into a pack's optimizer (first of its bases): every variable's update in one
    XLA-compiled function. Uncompiled, Keras' update is some 25 element-wise ops per
    variable, each a pass over a ``[K, in, out]`` kernel (half a digits pack's op time);
    compiled, each variable's ops fuse into one pass (10-20 % off a pack's epoch on
    digits, ~1 s of compiling per kind of pack: docs/performance.md). The update rule is
    Keras' own, unchanged."""

    _compiled: Any = None
    _compiled_for: list[int] | None = None

    def _backend_update_step(self, grads: Any, variables: Any, learning_rate: Any) -> None:
        grads, learning_rate = list(grads), tf.convert_to_tensor(learning_rate)
        if self._compiled_for != [id(v) for v in variables]:  # built for these variables
            update = super()._backend_update_step  # type: ignore[misc]

            def compiled(grads: Any, learning_rate: Any) -> int:
                update(grads, variables, learning_rate)
                return 0

            # a concrete function: called as it is, each pack's own (tf.function's
            # retracing detector would count every pack's trace as a retrace of one)
            function = tf.function(compiled, jit_compile=True)
            self._compiled = function.get_concrete_function(grads, learning_rate)
            self._compiled_for = [id(v) for v in variables]
        self._compiled(grads, learning_rate)


class MemberRates:
    """Mixed into a Keras optimizer: each variable's update at its members' rates, and at
    its members' own step counts (``iterations``, read by Adam's and Nadam's updates)."""

    member_start: Any  # [K, 1, 1]: the pack's step at which each member joined
    _layout: str | None = None  # while a variable's update runs: its path ("": per member)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        self._layout = str(getattr(variable, "path", variable.name))
        try:
            super().update_step(gradient, variable, _for(variable, learning_rate))  # type: ignore[misc]
        finally:
            self._layout = None

    @property
    def iterations(self) -> Any:
        steps = super().iterations  # type: ignore[misc]
        if self._layout is None:
            return steps
        own = ops.subtract(ops.cast(steps, "int64"), self.member_start)
        return _laid_out(self._layout, own)


class MemberNadam(MemberRates):
    """Nadam's running product of momentum factors, one per member (``[K, 1, 1]``)."""

    @property
    def _u_product(self) -> Any:
        if self._layout is None or not hasattr(self, "member_u_product"):
            return getattr(self, "member_u_product", None)
        return _laid_out(self._layout, self.member_u_product)

    @_u_product.setter
    def _u_product(self, scalar: Any) -> None:  # Nadam's build: one per member instead
        members = int(self.member_start.shape[0])
        self.member_u_product = self.add_variable(  # type: ignore[attr-defined]
            (members, 1, 1), initializer="ones", name="member_u_product"
        )

    def _backend_update_step(self, grads: Any, variables: Any, learning_rate: Any) -> None:
        self._layout = ""  # Nadam's product update, each member at its own step
        try:
            super()._backend_update_step(grads, variables, learning_rate)  # type: ignore[misc]
        finally:
            self._layout = None


class PackedSGD(CompiledUpdate, keras.optimizers.SGD):  # noqa: D101
    """SGD with a momentum per member (a ``[K, 1, 1]`` tensor from ``momentum``)."""

    def __init__(self, learning_rate: Any, momentum: Any, nesterov: bool) -> None:
        super().__init__(learning_rate=learning_rate, momentum=0.0, nesterov=nesterov)
        self.member_momentum = momentum

    def build(self, variables: Sequence[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """Keras' SGD update with momentum, the momentum per member."""
        learning_rate = ops.cast(_for(variable, learning_rate), variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(_for(variable, self.member_momentum()), variable.dtype)
        self.assign(
            m, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate))
        )
        if self.nesterov:
            self.assign_add(
                variable,
                ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate)),
            )
        else:
            self.assign_add(variable, m)


def packed_optimizer(models: Sequence[keras.Model], active: keras.Variable) -> Any:
    """The members' optimizer (one type, one config but for learning rate and SGD's
    momentum) for a pack whose running members ``active`` (``[K]``, 1 or 0) marks; the
    rates (``set_member_rates``) are variables: a kept pack takes new members' rates."""
    first = models[0].optimizer
    name = type(first).__name__.lower()
    config = dict(first.get_config())
    rates = _per_member([0.0] * len(models))
    momenta = _per_member([0.0] * len(models))

    def gate() -> Any:  # read at every step
        return ops.reshape(active, (-1, 1, 1))

    def learning_rate() -> Any:
        return ops.multiply(rates, gate())

    for key in ("name", "learning_rate"):
        config.pop(key, None)
    optimizer: Any
    if name == "sgd" and any(m.optimizer.momentum for m in models):
        optimizer = PackedSGD(
            learning_rate, lambda: ops.multiply(momenta, gate()), config["nesterov"]
        )
    else:
        mixin = MemberNadam if name == "nadam" else MemberRates
        bases = (CompiledUpdate, mixin, type(first))
        packed: Any = type(f"Packed{type(first).__name__}", bases, {})
        optimizer = packed.from_config({**config, "learning_rate": learning_rate})
    optimizer.member_rates, optimizer.member_momenta = rates, momenta
    optimizer.member_start = keras.Variable(
        np.zeros((len(models), 1, 1), "int64"), trainable=False, dtype="int64"
    )
    set_member_rates(optimizer, models)
    return optimizer


def set_member_rates(optimizer: Any, models: Sequence[keras.Model]) -> None:
    """Each member's learning rate (and SGD momentum) from its solo model's optimizer."""
    rates = [float(ops.convert_to_numpy(m.optimizer.learning_rate)) for m in models]
    momenta = [float(getattr(m.optimizer, "momentum", 0.0) or 0.0) for m in models]
    optimizer.member_rates.assign(np.asarray(rates, "float32").reshape(-1, 1, 1))
    optimizer.member_momenta.assign(np.asarray(momenta, "float32").reshape(-1, 1, 1))


def _per_member(values: Sequence[float]) -> keras.Variable:
    return keras.Variable(
        np.asarray(values, "float32").reshape(-1, 1, 1), trainable=False, dtype="float32"
    )
