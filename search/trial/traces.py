"""Trace once per architecture: trials of one structure train on one compiled model.

A Keras model traces its train, test and predict functions the first time it fits (on
digits, seconds against a tenth of a second per epoch). A worker keeps the compiled models
it trained, keyed by their structure (``structure_key``: the model's and the optimizer's
config without the learning rate, the loss, the metrics and the compile settings). When a
later trial builds a model of a structure already kept (``TracedModels.take``), its fresh
weights, random-seed states and freshly built optimizer state are copied into the kept
model, which then trains with the graphs it traced before. The fresh model was built from
the trial's seed exactly as without reuse, so the trial trains bit for bit as it would
alone (``tests/test_traces.py``); only the learning rate (a variable of Keras' optimizer)
varies within one structure. Dropout rates, momentum, batch norm on/off are part of the
structure (Keras bakes them into the graph).

A structure's model is kept the second time the structure comes (one that never comes
back holds no memory) and reused from the third on.

A trial starts from a clean Keras state and its seed (``start_fresh``). Keras'
``clear_session`` and TensorFlow's ``set_seed`` also empty TensorFlow's kernel caches, and a
kept model's graphs then have to be instantiated again (1.3 s of a 3 s digits trial); while
models are kept, those caches stay. Keras' own random draws are stateless (seeded per
call), so no result of the harness's changes (the tests compare against a fresh process);
a builder that draws with TensorFlow's stateful ops (``tf.random.uniform`` without a seed)
should draw with ``keras.random`` or set ``train.traced_models=0``.

Only models made of Keras' own layers, losses, metrics and activations (and the harness's
builders') are kept: a custom layer's behaviour may depend on
more than its config. ``train.traced_models`` bounds how many a worker keeps (a kept 20x100
dense net with its graphs holds 85-175 MiB); 0 turns reuse off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import numbers
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

__all__ = ["TRACED", "TracedModels", "start_fresh", "structure_key"]

MAX_PARAMS = 40_000_000  # and their parameters together (two VGG16s, ~80 dense 20x100s)


def start_fresh(seed: int, keep_caches: bool) -> None:
    """Keras' global state cleared (layer names count from the start again, memory of dead
    models collected) and every generator seeded with ``seed``; with ``keep_caches``,
    TensorFlow's kernel caches (the kept models' instantiated graphs) stay."""
    with _caches_kept(keep_caches):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def _caches_kept(keep: bool) -> Iterator[None]:
    """TensorFlow empties its caches through one call (``TFE_ContextClearCaches``, from
    ``clear_kernel_cache`` and ``_set_global_seed``): a no-op inside the block. Where
    TensorFlow has no such call, the caches are emptied as usual (slower, same results)."""
    try:
        from tensorflow.python.eager import context

        wrapper = context.pywrap_tfe
        clear = wrapper.TFE_ContextClearCaches
    except (ImportError, AttributeError):
        keep = False
    if not keep:
        yield
        return
    wrapper.TFE_ContextClearCaches = lambda handle: None
    try:
        yield
    finally:
        wrapper.TFE_ContextClearCaches = clear


# where the classes and functions come from whose configs say all they do: Keras' own and
# the harness's model builders' (a user's function is serialized by its name alone)
KNOWN = ("keras.", "keras", "search.models.")


def structure_key(model: keras.Model) -> str | None:
    """What decides a compiled model's traced graphs, as a digest; None where it cannot be
    told from configs (a layer, loss, metric or activation of the user's own)."""
    layers = [model, *model._flatten_layers(include_self=False, recursive=True)]
    if not all(type(layer).__module__.startswith(KNOWN) for layer in layers):
        return None
    optimizer = model.optimizer
    if optimizer is None or not type(optimizer).__module__.startswith(KNOWN):
        return None
    try:
        optimizer_config = dict(optimizer.get_config())
        if isinstance(optimizer_config.get("learning_rate"), numbers.Real):
            del optimizer_config["learning_rate"]  # a variable: set from the trial's model
        compiled = dict(model.get_compile_config() or {})
        compiled.pop("optimizer", None)  # as above, without its learning rate
        described = {
            "model": model.get_config(),
            "optimizer": [type(optimizer).__name__, optimizer_config],
            "compile": compiled,
            "settings": [model.steps_per_execution, model.jit_compile, model.run_eagerly],
            "variables": [[v.path, list(v.shape), str(v.dtype)] for v in model.variables],
        }
        text = json.dumps(described, sort_keys=True, default=_plain)
    except (NotImplementedError, TypeError, ValueError):
        return None
    if not _all_known(json.loads(text)):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def _all_known(config: Any) -> bool:
    """Every serialized object in ``config`` is Keras' or the harness's (a function of the
    user's own, a closure over a scale, reads ``{"module": "builtins", ...}``)."""
    if isinstance(config, dict):
        module = config.get("module")
        if isinstance(module, str) and "class_name" in config and not module.startswith(KNOWN):
            return False
        return all(_all_known(value) for value in config.values())
    if isinstance(config, list):
        return all(_all_known(value) for value in config)
    return True


def _plain(thing: Any) -> Any:
    """JSON for what configs hold besides JSON: arrays (a Normalization layer's statistics)
    in full, anything else by its serialized form."""
    if isinstance(thing, np.ndarray | np.generic):
        return np.asarray(thing).tolist()
    return keras.saving.serialize_keras_object(thing)


class TracedModels:
    """The compiled models a worker trained, by structure. A structure's model is kept the
    second time it is seen (a structure that never comes back, a continuous momentum, holds
    no memory), and reused from the third on."""

    def __init__(self, max_models: int = 8, max_params: int = MAX_PARAMS) -> None:
        self.max_models = max_models  # the least recently used goes first
        self.max_params = max_params
        self._models: OrderedDict[str, keras.Model] = OrderedDict()
        self._seen: set[str] = set()
        self.reused = 0  # trials that trained on a kept model

    def take(self, fresh: keras.Model, limit: int | None = None) -> keras.Model:
        """The model to train: a kept one of ``fresh``'s structure holding ``fresh``'s
        initial state, or ``fresh`` itself (kept for later trials when its structure was
        seen before). ``limit``: the number of models to keep from now on (0: none, and
        those kept go)."""
        if limit is not None:
            self.max_models = limit
        key = structure_key(fresh) if self.max_models > 0 else None
        if key is None:
            self._trim()
            return fresh
        kept = self._models.pop(key, None)
        if kept is not None and _load_initial_state(kept, fresh):
            self._models[key] = kept
            self.reused += 1
            return kept
        if key in self._seen:
            self._keep(key, fresh)
        self._seen.add(key)
        return fresh

    def clear(self) -> None:
        self._models.clear()
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._models)

    def _keep(self, key: str, model: keras.Model) -> None:
        self._models[key] = model
        self._trim()

    def _trim(self) -> None:
        while len(self._models) > self.max_models or (
            len(self._models) > 1 and self._params() > self.max_params
        ):
            self._models.popitem(last=False)

    def _params(self) -> int:
        return sum(int(model.count_params()) for model in self._models.values())


def _load_initial_state(kept: keras.Model, fresh: keras.Model) -> bool:
    """Copy ``fresh``'s variables (weights, BatchNorm statistics, seed states) and its
    optimizer's initial state into ``kept``; False (nothing copied) where they differ."""
    for model in (kept, fresh):  # kept: unbuilt if its trial stopped before a step
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    targets = [*kept.variables, *kept.optimizer.variables]
    sources = [*fresh.variables, *fresh.optimizer.variables]
    if len(targets) != len(sources) or any(
        tuple(a.shape) != tuple(b.shape) for a, b in zip(targets, sources, strict=True)
    ):
        return False
    for target, source in zip(targets, sources, strict=True):
        target.assign(source)
    return True


TRACED = TracedModels()  # this process's (each worker is a process of its own)
