"""A finished trial's TensorFlow graphs are freed (TensorFlow's gradient registry kept them)."""

from __future__ import annotations

import gc

import keras
import numpy as np

from search.models import build_model, make_optimizer
from search.trial.graphs import PREFIX, _gradient_registry, released_graphs


def _fit_once() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8), dtype=np.float32), rng.integers(0, 3, 64)
    model = build_model("dense", (8,), 3, depth=2, width=8, activation="elu")
    model.compile(optimizer=make_optimizer("nadam", 1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)


def _live_graphs() -> int:
    gc.collect()
    return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())


def test_trials_inside_released_graphs_leave_no_graph_behind() -> None:
    registry = _gradient_registry()
    assert registry is not None, "TensorFlow moved its gradient registry: see search.trial.graphs"
    keras.backend.clear_session()
    start = _live_graphs()
    earlier = {k for k in registry if str(k).startswith(PREFIX)}  # other tests' fits
    for _ in range(3):
        with released_graphs():
            _fit_once()
            assert any(str(k).startswith(PREFIX) for k in registry)  # fit registered some
        keras.backend.clear_session()
    assert _live_graphs() == start
    assert {k for k in registry if str(k).startswith(PREFIX)} == earlier


def test_registrations_made_before_the_block_are_kept() -> None:
    registry = _gradient_registry()
    assert registry is not None
    _fit_once()
    earlier = {k for k in registry if str(k).startswith(PREFIX)}
    assert earlier
    with released_graphs():
        _fit_once()
    assert {k for k in registry if str(k).startswith(PREFIX)} == earlier
    for key in earlier:  # leave the process as the other tests expect it
        del registry[key]
