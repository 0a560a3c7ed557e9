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

from search.packs.layers import (
    PackedActivation,
    PackedBatchNormalization,
    PackedDense,
    PackedDropout,
    PackedFlatten,
    PackedLayer,
    PackedNormalization,
)
from search.packs.optimizers import OPTIMIZERS, packed_optimizer
from search.packs.training import MEAN_METRICS, PackTraining

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
        return PackedDense(k, config["units"], config["use_bias"], config["activation"])
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
    for layer in first.layers:
        kind = type(layer).__name__
        if kind not in FUSABLE or not type(layer).__module__.startswith("keras"):
            return f"its layer {layer.name} ({kind}) has no fused form"
        if kind == "BatchNormalization" and layer.axis not in (-1, len(layer.input.shape) - 1):
            return f"its layer {layer.name} normalises another axis than the last"
        if kind in ("Dropout", "AlphaDropout") and layer.noise_shape is not None:
            return f"its layer {layer.name} has a noise_shape"
    if not _is_chain(first):
        return "it is not a chain of layers (one input, one output, no branches)"
    optimizer = type(first.optimizer).__name__.lower()
    if optimizer not in OPTIMIZERS:
        return f"its optimizer {type(first.optimizer).__name__} has no fused form"
    loss, metrics = _compiled(first)
    if not isinstance(loss, str) or any(m not in MEAN_METRICS for m in metrics):
        return "its loss or a metric is not one of Keras' by name"
    shape = shape_key(first)
    for model in models[1:]:
        if shape_key(model) != shape:
            return "its members differ in more than learning rate, momentum and dropout rate"
    return None


def fuse(
    models: Sequence[keras.Model], seed: int | None = None, jit_compile: bool | None = None
) -> PackedModel:
    """One compiled pack of ``models`` (see ``why_not``), holding their initial weights."""
    reason = why_not(models)
    if reason is not None:
        raise ValueError(f"these models cannot be packed: {reason}")
    first = models[0]
    k = len(models)
    solo = [layer for layer in first.layers if type(layer).__name__ != "InputLayer"]
    layers = [_fused(layer, k) for layer in solo]
    for layer in layers:
        if isinstance(layer, PackedDropout):
            layer.seed_generator = keras.random.SeedGenerator(seed)
    loss, metrics = _compiled(first)
    pack = PackedModel([layer for layer in layers if layer is not None], loss, metrics)
    pack(np.zeros((1, *first.input_shape[1:]), "float32"))  # builds every layer
    for i, layer in enumerate(layers):
        if layer is not None:
            layer.stack(
                [_solo_weights(model.layers[first.layers.index(solo[i])]) for model in models]
            )
    pack.compile_pack(
        packed_optimizer(models, pack.active),
        steps_per_execution=int(first.steps_per_execution or 1),
        jit_compile=bool(first.jit_compile) if jit_compile is None else jit_compile,
    )
    return pack


def _solo_weights(layer: keras.layers.Layer) -> list[Any]:
    kind = type(layer).__name__
    if kind in ("Dropout", "AlphaDropout"):
        return [layer.rate]
    if kind == "Normalization":
        return [keras.ops.convert_to_numpy(layer.mean), keras.ops.convert_to_numpy(layer.variance)]
    return list(layer.get_weights())


class PackedModel(PackTraining):
    """The fused layers in a chain, with ``PackTraining``'s per-member fit."""

    def __init__(self, layers: Sequence[PackedLayer], loss: str, metrics: list[str]) -> None:
        super().__init__(layers[0].members, loss, metrics)
        self.chain = list(layers)

    def call(self, x: Any, training: bool | None = None) -> Any:
        for layer in self.chain:
            needs = isinstance(layer, PackedBatchNormalization | PackedDropout)
            x = layer(x, training=training) if needs else layer(x)
        if len(x.shape) == 2:  # a pack of layers none of which splits members
            x = keras.ops.broadcast_to(keras.ops.expand_dims(x, 0), (self.members, *x.shape))
        return x

    def give_back(self, k: int, model: keras.Model) -> None:
        """Member k's current weights into its solo ``model``."""
        solo = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
        for packed, layer in zip(self.chain, solo, strict=True):
            if layer.weights:
                layer.set_weights(
                    [
                        w.reshape(v.shape)
                        for w, v in zip(packed.member(k), layer.weights, strict=True)
                    ]
                )

    def member_weights(self, k: int) -> list[list[np.ndarray]]:
        return [layer.member(k) for layer in self.chain]


def _is_chain(model: keras.Model) -> bool:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    return all(len(getattr(layer, "_inbound_nodes", [])) <= 1 for layer in model.layers)


def _compiled(model: keras.Model) -> tuple[Any, list[Any]]:
    config = dict(model.get_compile_config() or {})
    return config.get("loss"), list(config.get("metrics") or [])


def shape_key(model: keras.Model) -> str:
    """Everything that must be equal across members: layers' configs and weight shapes
    less the per-member hyperparameters, the optimizer's type and config less those, the
    loss, metrics and compile settings."""

    def strip(config: dict[str, Any], keys: set[str]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k not in keys}

    layers = {"name", "rate", "seed"}  # the dropout rate: a variable of the pack
    described: list[Any] = [
        [
            type(layer).__name__,
            strip(layer.get_config(), layers),
            [list(w.shape) for w in layer.weights],
        ]
        for layer in model.layers
    ]
    optimizer = type(model.optimizer).__name__
    per_member = {"name", "learning_rate"} | ({"momentum"} if optimizer == "SGD" else set())
    described.append([optimizer, strip(model.optimizer.get_config(), per_member)])
    described.append(_compiled(model))
    described.append([model.steps_per_execution, model.jit_compile])
    return json.dumps(described, sort_keys=True, default=str)
