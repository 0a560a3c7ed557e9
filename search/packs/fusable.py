"""What can be fused into a pack: which models (``why_not``), and what members must
share (``shape_key``); the optional layers' configs a pack's places take."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import keras

from search.packs.chain import OPTIONAL, aligned, is_chain, template_kinds
from search.packs.optimizers import OPTIMIZERS
from search.packs.training import MEAN_METRICS

__all__ = ["FUSABLE", "compiled", "place_configs", "shape_key", "why_not"]


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
    loss, metrics = compiled(first)
    if not isinstance(loss, str) or any(m not in MEAN_METRICS for m in metrics):
        return "its loss or a metric is not one of Keras' by name"
    shape = shape_key(first)
    kinds = template_kinds(models)
    places = [aligned(kinds, model) for model in models]
    differ = "its members differ in more than learning rate, momentum, dropout rate, batch norm"
    if any(shape_key(m) != shape or p is None for m, p in zip(models, places, strict=True)):
        return differ
    if any(len(configs) > 1 for configs in place_configs(kinds, places)):
        return differ
    return None


def place_configs(
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


def compiled(model: keras.Model) -> tuple[Any, list[Any]]:
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
    described.append(compiled(model))
    described.append([model.steps_per_execution, model.jit_compile])
    return json.dumps(described, sort_keys=True, default=str)
