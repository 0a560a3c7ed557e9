"""A pack: K solo models of one structure fused into one Keras model (``fuse``).

The solo models are the trials' own (built and compiled from each trial's config and
seed): the pack starts from their initial weights, trains every member at its own learning
rate, momentum and dropout rate, and gives each member's weights back to its solo model
(``PackedModel.give_back``), which the harness then evaluates, logs and exports as it does
any trial's model. ``why_not`` says why models cannot be fused (a layer type the pack has
no fused form of, members that differ in more than those hyperparameters).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from search.packs.chain import DROPOUTS, OPTIONAL, aligned, is_chain, template_kinds
from search.packs.layers import (
    PackedActivation,
    PackedBatchNormalization,
    PackedDense,
    PackedDropout,
    PackedFlatten,
    PackedLayer,
    PackedNormalization,
)
from search.packs.optimizers import OPTIMIZERS, packed_optimizer, set_member_rates
from search.packs.training import MEAN_METRICS, PackTraining

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


FUSABLE = (
    "InputLayer",
    "Flatten",
    "Dense",
    "BatchNormalization",
    "Normalization",
    "Activation",
    "Dropout",
    "AlphaDropout",
)


def why_not(models: Sequence[keras.Model]) -> str | None:
    """Why these compiled models cannot train as one pack; None when they can."""
    first = models[0]
    for layer in (layer for model in models for layer in model.layers):
        kind = type(layer).__name__
        if kind not in FUSABLE or not type(layer).__module__.startswith("keras"):
            return f"its layer {layer.name} ({kind}) has no fused form"
        if kind == "BatchNormalization" and layer.axis not in (-1, len(layer.input.shape) - 1):
            return f"its layer {layer.name} normalises another axis than the last"
        if kind in ("Dropout", "AlphaDropout") and layer.noise_shape is not None:
            return f"its layer {layer.name} has a noise_shape"
    if not is_chain(first):
        return "it is not a chain of layers (one input, one output, no branches)"
    optimizer = type(first.optimizer).__name__.lower()
    if optimizer not in OPTIMIZERS:
        return f"its optimizer {type(first.optimizer).__name__} has no fused form"
    loss, metrics = _compiled(first)
    if not isinstance(loss, str) or any(m not in MEAN_METRICS for m in metrics):
        return "its loss or a metric is not one of Keras' by name"
    shape = shape_key(first)
    kinds = template_kinds(models)
    places = [aligned(kinds, model) for model in models]
    differ = "its members differ in more than learning rate, momentum, dropout rate, batch norm"
    if any(shape_key(m) != shape or p is None for m, p in zip(models, places, strict=True)):
        return differ
    if any(len(configs) > 1 for configs in _place_configs(kinds, places)):
        return differ
    return None


def _place_configs(
    kinds: Sequence[str], places: Sequence[Sequence[keras.layers.Layer | None] | None]
) -> list[set[str]]:
    """Per place of the chain, the configs its members' optional layers there have."""
    return [
        {
            json.dumps(_optional_config(p[i]), sort_keys=True)
            for p in places
            if p is not None and p[i] is not None
        }
        for i in range(len(kinds))
    ]


def _optional_config(layer: keras.layers.Layer) -> dict[str, Any]:
    """What members' layers at one place share (a dropout's rate is the member's own)."""
    if type(layer).__name__ not in OPTIONAL:
        return {}
    return {k: v for k, v in layer.get_config().items() if k not in ("name", "rate", "seed")}


def fuse(
    models: Sequence[keras.Model], seed: int | None = None, jit_compile: bool | None = None
) -> PackedModel:
    """One compiled pack of ``models`` (see ``why_not``), holding their initial weights."""
    reason = why_not(models)
    if reason is not None:
        raise ValueError(f"these models cannot be packed: {reason}")
    first = models[0]
    kinds = template_kinds(models)
    places = [aligned(kinds, model) or [] for model in models]
    layers = [
        _fused(next(p[i] for p in places if p[i] is not None), len(models))
        for i in range(len(kinds))
    ]
    loss, metrics = _compiled(first)
    configs = [next(iter(c), "") for c in _place_configs(kinds, places)]
    pack = PackedModel(
        [layer for layer in layers if layer is not None], loss, metrics, kinds, configs
    )
    pack(np.zeros((1, *first.input_shape[1:]), "float32"))  # builds every layer
    optimizer = packed_optimizer(models, pack.active)
    pack.compile_pack(
        optimizer,
        steps_per_execution=int(first.steps_per_execution or 1),
        jit_compile=bool(first.jit_compile) if jit_compile is None else jit_compile,
    )
    optimizer.build(pack.trainable_variables)
    pack.fresh_optimizer = [keras.ops.convert_to_numpy(v) for v in optimizer.variables]
    pack.restart(models, seed)
    return pack


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

    def call(self, x: Any, training: bool | None = None) -> Any:
        for layer in self.chain:
            needs = isinstance(layer, PackedBatchNormalization | PackedDropout)
            x = layer(x, training=training) if needs else layer(x)
        if len(x.shape) == 2:  # a pack of layers none of which splits members
            x = keras.ops.broadcast_to(keras.ops.expand_dims(x, 0), (self.members, *x.shape))
        return x

    def fits(self, models: Sequence[keras.Model]) -> bool:
        """Whether ``models`` (``shape_key`` equal to this pack's members') can train on
        this pack: no more of them than it has members, their layers on its chain, their
        optional layers configured as its own at each place."""
        places = [aligned(self.kinds, model) for model in models]
        if len(models) > self.members or any(p is None for p in places):
            return False
        configs = _place_configs(self.kinds, places)
        return all(c <= {own} for c, own in zip(configs, self.place_configs, strict=True))

    def restart(self, models: Sequence[keras.Model], seed: int | None) -> None:
        """Start again from ``models``' initial weights and hyperparameters (``fits``):
        each member running, a fresh optimizer state, the dropout draws from ``seed``. The
        traced train and test functions stay. Places beyond ``models`` (a pack of 8 for 6
        trials) hold the first model's weights and never train."""
        running = len(models)
        models = [*models, *[models[0]] * (self.members - running)]
        solo = [self._aligned(model) for model in models]
        dropouts = 0
        for i, layer in enumerate(self.chain):
            layer.stack([_solo_weights(own[i]) for own in solo])
            if isinstance(layer, PackedDropout):  # each its own stream: 2**20 steps apart
                state = [(seed or 0) % 2**32, dropouts * 2**20]
                layer.seed_generator.state.assign(np.asarray(state, "uint32"))
                dropouts += 1
        for variable, value in zip(self.optimizer.variables, self.fresh_optimizer, strict=True):
            variable.assign(value)
        set_member_rates(self.optimizer, models)
        self.active.assign((np.arange(self.members) < running).astype("float32"))
        self.stop_training = False

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


def _compiled(model: keras.Model) -> tuple[Any, list[Any]]:
    config = dict(model.get_compile_config() or {})
    return config.get("loss"), list(config.get("metrics") or [])


def shape_key(model: keras.Model) -> str:
    """Everything that must be equal across members: layers' configs and weight shapes
    less the per-member hyperparameters, the optimizer's type and config less those, the
    loss, metrics and compile settings."""

    def strip(config: dict[str, Any], keys: set[str]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k not in keys}

    layers = {"name", "rate", "seed", "use_bias"}  # rate: a variable; a bias: masked
    described: list[Any] = [
        [
            type(layer).__name__,
            strip(layer.get_config(), layers),
            [list(w.shape) for w in layer.weights[:1]],
        ]
        for layer in model.layers
        if type(layer).__name__ not in OPTIONAL  # checked place by place (``why_not``)
    ]
    optimizer = type(model.optimizer).__name__
    per_member = {"name", "learning_rate"} | ({"momentum"} if optimizer == "SGD" else set())
    described.append([optimizer, strip(model.optimizer.get_config(), per_member)])
    described.append(_compiled(model))
    described.append([model.steps_per_execution, model.jit_compile])
    return json.dumps(described, sort_keys=True, default=str)
