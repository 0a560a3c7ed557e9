"""A pack: K solo models of one structure fused into one Keras model (``fuse``).

The solo models are the trials' own (built and compiled from each trial's config and
seed): the pack starts from their initial weights, trains every member at its own learning
rate, momentum and dropout rate, and gives each member's weights back to its solo model
(``PackedModel.give_back``), which the harness then evaluates, logs and exports as it does
any trial's model. ``why_not`` says why models cannot be fused (a layer type the pack has
no fused form of, members that differ in more than those hyperparameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from search.packs.chain import DROPOUTS, aligned, template_kinds
from search.packs.fusable import compiled, place_configs, shape_key, why_not
from search.packs.layers import (
    PackedActivation,
    PackedBatchNormalization,
    PackedDense,
    PackedDropout,
    PackedFlatten,
    PackedLayer,
    PackedNormalization,
)
from search.packs.optimizers import SHARED, packed_optimizer, set_member_rates
from search.packs.training import PackTraining

Values = list[list[np.ndarray]]  # a pack's weights, layer by layer (``PackedModel.values``)

__all__ = ["PackedModel", "fuse", "shape_key", "why_not"]


def _fused(layer: keras.layers.Layer, k: int) -> PackedLayer | None:
    """The pack's layer for a solo layer (None: it needs none, an input)."""
    config = layer.get_config()
    kind = type(layer).__name__
    if kind == "InputLayer":
        return None
    if kind == "Flatten":
        return PackedFlatten(k)
    if kind == "Dense":
        return PackedDense(k, config["units"], config["activation"])
    if kind == "BatchNormalization":
        return PackedBatchNormalization(
            k, config["momentum"], config["epsilon"], config["center"], config["scale"]
        )
    if kind == "Normalization":
        return PackedNormalization(k)
    if kind == "Activation":
        return PackedActivation(k, config["activation"])
    if kind in ("Dropout", "AlphaDropout"):
        return PackedDropout(k, alpha=kind == "AlphaDropout")
    raise ValueError(kind)


def fuse(
    models: Sequence[keras.Model],
    seed: int | None = None,
    jit_compile: bool | None = None,
    size: int | None = None,
) -> PackedModel:
    """One compiled pack that ``models`` fit (see ``why_not``), of ``size`` places (None:
    one each), holding the initial weights of the first ``size``."""
    size = size or len(models)
    reason = why_not(models)
    if reason is not None:
        raise ValueError(f"these models cannot be packed: {reason}")
    first = models[0]
    kinds = template_kinds(models)
    places = [aligned(kinds, model) or [] for model in models]
    layers = [
        _fused(next(p[i] for p in places if p[i] is not None), size) for i in range(len(kinds))
    ]
    loss, metrics = compiled(first)
    configs = [next(iter(c), "") for c in place_configs(kinds, places)]
    pack = PackedModel(
        [layer for layer in layers if layer is not None], loss, metrics, kinds, configs
    )
    pack(np.zeros((1, *first.input_shape[1:]), "float32"))  # builds every layer
    optimizer = packed_optimizer(models[:size], pack.active)
    pack.compile_pack(
        optimizer,
        steps_per_execution=int(first.steps_per_execution or 1),
        jit_compile=bool(first.jit_compile) if jit_compile is None else jit_compile,
    )
    optimizer.build(pack.trainable_variables)
    pack.fresh_optimizer = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]
    pack.restart(models[:size], seed)
    return pack


def _untracked(layer: keras.layers.Layer, name: str, value: Any) -> Any:
    """``value`` as an attribute Keras does not track (solo models are not a pack's layers)."""
    object.__setattr__(layer, name, value)
    return value


def _solo_weights(layer: keras.layers.Layer | None) -> list[Any]:
    if layer is None:  # an optional layer the member lacks: a dropout rate of 0, no BN
        return []
    kind = type(layer).__name__
    if kind in DROPOUTS:
        return [layer.rate]
    if kind == "Normalization":
        return [keras.ops.convert_to_numpy(layer.mean), keras.ops.convert_to_numpy(layer.variance)]
    return list(layer.get_weights())


class PackedModel(PackTraining):
    """The fused layers in a chain, with ``PackTraining``'s per-member fit."""

    def __init__(
        self,
        layers: Sequence[PackedLayer],
        loss: str,
        metrics: list[str],
        kinds: Sequence[str],
        place_configs: Sequence[str],
    ) -> None:
        super().__init__(layers[0].members, loss, metrics)
        self.chain = list(layers)
        self.kinds = list(kinds)  # the solo layers' types, place by place
        self.place_configs = list(place_configs)  # its optional layers' configs, by place
        self.placed: list[keras.Model] = _untracked(self, "placed", [])  # solo model by place

    def call(self, x: Any, training: bool | None = None) -> Any:
        for layer in self.chain:
            needs = isinstance(layer, PackedBatchNormalization | PackedDropout)
            x = layer(x, training=training) if needs else layer(x)
        if len(x.shape) == 2:  # a pack of layers none of which splits members
            x = keras.ops.broadcast_to(keras.ops.expand_dims(x, 0), (self.members, *x.shape))
        return x

    def fits(self, models: Sequence[keras.Model], size: int | None = None) -> bool:
        """Whether ``models`` (``shape_key`` equal to this pack's members') can train on
        this pack, ``size`` at a time (None: all): no more than it has places, their layers
        on its chain, their optional layers configured as its own at each place."""
        places = [aligned(self.kinds, model) for model in models]
        if (size or len(models)) > self.members or any(p is None for p in places):
            return False
        configs = place_configs(self.kinds, places)
        return all(c <= {own} for c, own in zip(configs, self.place_configs, strict=True))

    def restart(
        self, models: Sequence[keras.Model], seed: int | None, running: int | None = None
    ) -> None:
        """Start again from ``models``' initial weights and hyperparameters (``fits``):
        the first ``running`` of them running (all: None), a fresh optimizer state, the
        dropout draws from ``seed``. The traced train and test functions stay. Places
        beyond ``models`` (a pack of 8 for 6 trials) hold the first model's weights and
        never train, unless a member ``join``s there."""
        running = len(models) if running is None else running
        self.placed[:] = [*models, *[models[0]] * (self.members - len(models))]
        self._stack()
        dropouts = 0
        for layer in self.chain:
            if isinstance(layer, PackedDropout):  # each its own stream: 2**20 steps apart
                state = [(seed or 0) % 2**32, dropouts * 2**20]
                layer.seed_generator.state.assign(np.asarray(state, "uint32"))
                dropouts += 1
        for variable, value in zip(self.optimizer.variables, self.fresh_optimizer, strict=True):
            variable.assign(value)
        set_member_rates(self.optimizer, self.placed)
        self.active.assign((np.arange(self.members) < running).astype("float32"))
        self.stop_training = False

    def join(self, k: int, model: keras.Model, running: Sequence[int]) -> None:
        """``model`` (initial weights, its hyperparameters) starts training at place k,
        from its first step (a fresh optimizer state at k), while the members at the
        places ``running`` train on; the dropout draws go on from where they are."""
        values = self.values()
        for j in running:
            self.give_back(j, self.placed[j], values)  # their weights now, restacked below
        self.placed[k] = model
        self._stack()
        optimizer = self.optimizer
        for variable, fresh in zip(optimizer.variables, self.fresh_optimizer, strict=True):
            if len(variable.shape) == 3:  # a member axis: 1 for the shared kernel, else 0
                now = np.array(keras.ops.convert_to_numpy(variable))
                index = (slice(None), k) if SHARED in str(variable.path) else (k,)
                now[index] = fresh[index]
                variable.assign(now)
        set_member_rates(optimizer, self.placed)
        start = np.array(keras.ops.convert_to_numpy(optimizer.member_start))
        start[k] = int(keras.ops.convert_to_numpy(optimizer.iterations))
        optimizer.member_start.assign(start)
        active = np.array(keras.ops.convert_to_numpy(self.active))
        active[k] = 1.0
        self.active.assign(active)

    def _stack(self) -> None:
        """Every layer from the solo models at the places (``placed``)."""
        solo = [self._aligned(model) for model in self.placed]
        for i, layer in enumerate(self.chain):
            layer.stack([_solo_weights(own[i]) for own in solo])

    def give_back(self, k: int, model: keras.Model, values: Values | None = None) -> None:
        """Member k's current weights (or those of ``values``) into its solo ``model``."""
        self.load(model, self.member_weights(k, values))

    def values(self) -> Values:
        """Every member's weights now, layer by layer (one read of the pack)."""
        return [layer.values() for layer in self.chain]

    def member_weights(self, k: int, values: Values | None = None) -> list[list[np.ndarray]]:
        """Member k's weights, place by place of the chain, from ``values`` or read now."""
        values = self.values() if values is None else values
        return [layer.member(k, own) for layer, own in zip(self.chain, values, strict=True)]

    def load(self, model: keras.Model, weights: Sequence[Sequence[np.ndarray]]) -> None:
        """``weights`` (``member_weights``) into a member's solo ``model``."""
        for layer, own in zip(self._aligned(model), weights, strict=True):
            if layer is not None and layer.weights:
                layer.set_weights(
                    [w.reshape(v.shape) for w, v in zip(own, layer.weights, strict=True)]
                )

    def _aligned(self, model: keras.Model) -> list[keras.layers.Layer | None]:
        solo = aligned(self.kinds, model)
        if solo is None:
            raise ValueError(f"model {model.name} does not fit this pack's layers")
        return solo
