"""Fused packs (``search.packs``): a member of a pack trains like the same trial alone
(same initial weights, same batches, no dropout: per-epoch figures within 1e-5), K identical
members give K identical results, each member stops, keeps its best weights and meets its
own errors alone, and what cannot be fused says why."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
import pytest

from search.data import splits_from_config
from search.data.splits import Splits
from search.packs import PACKS, Member, fit_pack, fuse, why_not
from search.packs.chain import aligned, template_kinds
from search.packs.kept import Kept
from search.trial import build_compiled
from tests.conftest import compose, tiny

EPOCHS = 4


@pytest.fixture(autouse=True)
def _no_kept_packs() -> Iterator[None]:
    PACKS.clear()
    PACKS.reused = 0
    yield
    PACKS.clear()


class Rows(keras.callbacks.Callback):
    """Each epoch's logs, as a member's callbacks see them."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.rows.append(dict(logs or {}))


def _model(tmp_path: Path, seed: int, *overrides: str) -> tuple[keras.Model, Splits]:
    """A trial's compiled model, as the harness builds it from the trial's config."""
    cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", f"seed={seed}", *overrides))
    splits = splits_from_config(cfg.dataset)
    keras.utils.set_random_seed(seed)
    return build_compiled(cfg, splits), splits


def _inputs(splits: Splits) -> dict[str, Any]:
    return {**splits.fit_inputs(64), "shuffle": False}  # the same batches, alone or packed


def _alone(tmp_path: Path, seed: int, *overrides: str) -> dict[str, list[float]]:
    model, splits = _model(tmp_path, seed, *overrides)
    history: dict[str, list[float]] = model.fit(**_inputs(splits), epochs=EPOCHS, verbose=0).history
    return history


def _packed(
    tmp_path: Path,
    trials: Sequence[tuple[int, tuple[str, ...]]],
    patience: int = 100,
    ended: Callable[[list[Member], list[Rows], int], None] | None = None,
) -> tuple[list[Member], list[Rows]]:
    members, rows = [], []
    for seed, overrides in trials:
        model, splits = _model(tmp_path, seed, *overrides)
        rows.append(Rows())
        members.append(
            Member(model, [rows[-1]], monitor="val_accuracy", mode="max", patience=patience)
        )
    told = None if ended is None else lambda k: ended(members, rows, k)
    fit_pack(members, _inputs(splits), epochs=EPOCHS, ended=told)
    return members, rows


PACK_CASES = [  # members differ in seed, learning rate, momentum: one op trains them all
    pytest.param(
        [(1, ()), (2, ("optimizer.learning_rate=0.004",)), (3, ("optimizer.learning_rate=0.01",))],
        id="nadam",
    ),
    pytest.param(
        [
            (1, ("model.batch_norm=true", "optimizer.name=sgd", "optimizer.learning_rate=0.05")),
            (2, ("model.batch_norm=true", "optimizer.name=sgd", "optimizer.momentum=0.9")),
            (3, ("model.batch_norm=true", "optimizer.name=sgd", "optimizer.momentum=0.5")),
        ],
        id="batch_norm_sgd_momentum",
    ),
    pytest.param(  # one pack for batch norm on and off: off is a pass-through, no bias masked
        [
            (1, ("model.batch_norm=true",)),
            (2, ("optimizer.learning_rate=0.003",)),
            (3, ("model.batch_norm=true", "optimizer.learning_rate=0.002")),
        ],
        id="batch_norm_on_and_off",
    ),
    pytest.param(
        [
            (
                4,
                (
                    "model.activation=selu",
                    "model.initializer=lecun_normal",
                    "model.standardize=true",
                    "optimizer.name=rmsprop",
                ),
            ),
            (
                5,
                (
                    "model.activation=selu",
                    "model.initializer=lecun_normal",
                    "model.standardize=true",
                    "optimizer.name=rmsprop",
                    "optimizer.learning_rate=0.003",
                ),
            ),
        ],
        id="selu_standardized_rmsprop",
    ),
]


@pytest.mark.parametrize("trials", PACK_CASES)
def test_a_member_trains_like_the_same_trial_alone(
    tmp_path: Path, trials: list[tuple[int, tuple[str, ...]]]
) -> None:
    _, rows = _packed(tmp_path, trials)
    for (seed, overrides), member_rows in zip(trials, rows, strict=True):
        alone = _alone(tmp_path, seed, *overrides)
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            packed = [row[name] for row in member_rows.rows]
            assert len(packed) == EPOCHS
            np.testing.assert_allclose(
                packed, alone[name], rtol=1e-5, atol=1e-5, err_msg=f"{name} {seed}"
            )


def test_a_member_without_dropout_packs_with_members_with_it(tmp_path: Path) -> None:
    """A dropout rate of 0 builds no Dropout layers; in a pack it is a rate of 0: that
    member still trains like alone, the other with its own rate."""
    trials = [(1, ()), (2, ("model.dropout_rate=0.3", "optimizer.learning_rate=0.003"))]
    members, rows = _packed(tmp_path, trials)
    assert len(members[1].model.layers) > len(members[0].model.layers)  # its Dropout layers
    alone = _alone(tmp_path, 1)
    for name in ("loss", "val_loss", "val_accuracy"):
        packed = [row[name] for row in rows[0].rows]
        np.testing.assert_allclose(packed, alone[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert len(rows[1].rows) == EPOCHS


def test_batch_norm_and_dropout_members_share_one_pack(tmp_path: Path) -> None:
    """Members with batch norm and no dropout, dropout and no batch norm: one chain with
    both, each member with None where it lacks one; the one without dropout trains as alone."""
    trials = [(1, ("model.batch_norm=true",)), (2, ("model.dropout_rate=0.3",))]
    members, rows = _packed(tmp_path, trials)
    assert why_not([m.model for m in members]) is None
    kinds = template_kinds([m.model for m in members])
    assert {"BatchNormalization", "Dropout"} <= set(kinds)
    assert all(aligned(kinds, m.model) is not None for m in members)
    seed, overrides = trials[0]
    alone = _alone(tmp_path, seed, *overrides)
    for name in ("loss", "val_loss", "val_accuracy"):
        packed = [row[name] for row in rows[0].rows]
        np.testing.assert_allclose(packed, alone[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert len(rows[1].rows) == EPOCHS


def test_identical_members_give_identical_results(tmp_path: Path) -> None:
    """Dropout too: members draw their masks from one draw (common random numbers). To
    float rounding: a fused matmul sums each member's columns in its own SIMD lanes."""
    trial = (7, ("model.dropout_rate=0.2",))
    members, rows = _packed(tmp_path, [trial] * 3)
    for other in rows[1:]:
        for mine, theirs in zip(rows[0].rows, other.rows, strict=True):
            assert mine == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    weights = [m.model.get_weights() for m in members]
    for other in weights[1:]:
        for a, b in zip(weights[0], other, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_each_member_stops_alone_and_keeps_its_best_weights(tmp_path: Path) -> None:
    """A learning rate that learns nothing stops early (patience 1); the other trains on;
    each solo model ends at its best epoch, as Keras' EarlyStopping leaves it."""
    trials = [(1, ("optimizer.learning_rate=1e-9",)), (2, ("optimizer.learning_rate=0.01",))]
    ends: list[tuple[int, int, list[np.ndarray]]] = []  # who, the pack's epochs, its weights

    def ended(members: list[Member], rows: list[Rows], k: int) -> None:
        ends.append((k, len(rows[1].rows), members[k].model.get_weights()))

    members, rows = _packed(tmp_path, trials, patience=1, ended=ended)
    assert len(rows[0].rows) < EPOCHS == len(rows[1].rows)
    # the early one ended as it stopped, its best weights in its model, the other training on
    assert [(k, epochs) for k, epochs, _ in ends] == [(0, len(rows[0].rows)), (1, EPOCHS)]
    for k, _, weights in ends:
        assert all(np.array_equal(a, b) for a, b in zip(weights, members[k].model.get_weights()))
    for member, member_rows in zip(members, (r.rows for r in rows), strict=True):
        best = max(range(len(member_rows)), key=lambda e: member_rows[e]["val_accuracy"])
        assert member.best_epoch == best
        _, splits = _model(tmp_path, 0)
        x, y = splits.probe("val", 10_000)
        logged = member.model.evaluate(x, y, verbose=0, return_dict=True)
        assert logged["accuracy"] == pytest.approx(member_rows[best]["val_accuracy"], abs=1e-5)


class Fails(keras.callbacks.Callback):
    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if epoch == 1:
            raise RuntimeError("pruned at epoch 1")


def test_a_member_whose_callback_raises_stops_alone(tmp_path: Path) -> None:
    (a, splits), (b, _) = _model(tmp_path, 1), _model(tmp_path, 2)
    rows_a, rows_b = Rows(), Rows()
    members = [Member(a, [Fails(), rows_a]), Member(b, [rows_b])]
    fit_pack(members, _inputs(splits), epochs=EPOCHS)
    assert isinstance(members[0].error, RuntimeError) and members[1].error is None
    assert len(rows_a.rows) == 1 and len(rows_b.rows) == EPOCHS  # Fails ran before it


def test_what_cannot_be_fused_says_why(tmp_path: Path) -> None:
    model, _ = _model(tmp_path, 1)
    wider, _ = _model(tmp_path, 1, "model.width=8")
    assert why_not([model, model]) is None
    assert "differ" in str(why_not([model, wider]))
    sgd, _ = _model(tmp_path, 1, "optimizer.name=sgd")
    nesterov, _ = _model(tmp_path, 1, "optimizer.name=sgd", "optimizer.nesterov=true")
    assert "differ" in str(why_not([sgd, nesterov]))
    inputs = keras.Input((8, 8))
    conv = keras.layers.Dense(10, activation="softmax")(
        keras.layers.GlobalAveragePooling1D()(inputs)
    )
    own = keras.Model(inputs, conv)
    own.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert "GlobalAveragePooling1D" in str(why_not([own]))
    with pytest.raises(ValueError, match="cannot be packed"):
        fuse([own])


def test_a_kept_pack_trains_new_members_as_a_new_pack_would(tmp_path: Path) -> None:
    """Weights, rates, momenta, optimizer state and dropout draws all start afresh."""
    sgd = ("optimizer.name=sgd", "optimizer.momentum=0.9", "model.dropout_rate=0.2")
    first = [(1, sgd), (2, (*sgd, "optimizer.learning_rate=0.05"))]
    later = [(3, (*sgd, "optimizer.learning_rate=0.02")), (4, sgd)]
    _packed(tmp_path, first)
    assert len(PACKS) == 1 and PACKS.reused == 0
    members, on_kept = _packed(tmp_path, later)
    assert PACKS.reused == 1
    PACKS.clear()
    again, on_new = _packed(tmp_path, later)
    assert PACKS.reused == 1  # a new pack: none kept
    for kept_rows, new_rows in zip(on_kept, on_new, strict=True):
        assert kept_rows.rows == new_rows.rows
    for a, b in zip(members[0].model.get_weights(), again[0].model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_kept_pack_takes_fewer_and_simpler_members_than_it_has(tmp_path: Path) -> None:
    """A pack of 3 with batch norm, dropout and momentum trains 2 plain SGD members on its
    traced functions (an idle place, rate 0, batch norm off, momentum 0) as a new pack of
    the 2 does."""
    sgd = ("optimizer.name=sgd", "optimizer.learning_rate=0.05")
    _packed(
        tmp_path,
        [
            (1, (*sgd, "optimizer.momentum=0.9", "model.batch_norm=true")),
            (2, (*sgd, "model.dropout_rate=0.2")),
            (3, sgd),
        ],
    )
    later = [(4, sgd), (5, (*sgd, "optimizer.learning_rate=0.02"))]
    members, on_kept = _packed(tmp_path, later)
    assert PACKS.reused == 1  # the idle place's steps cost less than tracing a pack of 2
    PACKS.clear()
    again, on_new = _packed(tmp_path, later)
    assert PACKS.reused == 1
    for kept_rows, new_rows in zip(on_kept, on_new, strict=True):
        for kept_row, new_row in zip(kept_rows.rows, new_rows.rows, strict=True):
            assert kept_row == pytest.approx(new_row, abs=1e-5)
    for a, b in zip(members[1].model.get_weights(), again[1].model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_kept_pack_is_not_padded_where_its_idle_places_cost_more_than_tracing(
    tmp_path: Path,
) -> None:
    _packed(tmp_path, [(1, ()), (2, ()), (3, ())])
    (kept,) = PACKS._packs.values()
    kept.trace_s = kept.epoch_s * EPOCHS / 3 - 1e-6  # 1 idle place of 3 over EPOCHS epochs
    _packed(tmp_path, [(4, ()), (5, ())])
    assert PACKS.reused == 0 and len(PACKS) == 2
    _packed(tmp_path, [(6, ()), (7, ()), (8, ())])  # its own size: no idle place
    assert PACKS.reused == 1


def test_a_kept_packs_idle_places_cost_its_epoch_over_the_epochs_its_last_fit_ran() -> None:
    kept = Kept(pack=SimpleNamespace(members=8), kind="k", momentum=False)  # type: ignore[arg-type]
    kept.uses = 1  # its first fit: the first epoch's extra seconds are tracing
    kept.timed([5.0, 0.4, 0.5, 0.6])
    assert kept.trace_s == pytest.approx(4.5) and (kept.epoch_s, kept.epochs_run) == (0.5, 4)
    assert kept.idle_s(6, epochs=100) == pytest.approx(0.5 * 2 / 8 * 4)  # 4 run, not 100
    assert kept.idle_s(6, epochs=2) == pytest.approx(0.5 * 2 / 8 * 2)
    kept.uses = 2
    kept.timed([0.7] * 10)
    assert kept.trace_s == pytest.approx(4.5) and (kept.epoch_s, kept.epochs_run) == (0.7, 10)


def _stepper(optimizer: Any, variables: list[Any]) -> Any:
    import tensorflow as tf

    @tf.function
    def step(grads: list[Any]) -> int:
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return 0

    return step


def test_a_packs_update_is_kerass_own_update_compiled_once_per_pack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``CompiledUpdate``: Keras' Nadam update, run as one XLA-compiled function, gives the
    plain optimizer's weights; six packs' optimizers in one process log no retracing."""
    import logging

    import tensorflow as tf

    from search.packs.optimizers import CompiledUpdate

    compiled_kind = type("CompiledNadam", (CompiledUpdate, keras.optimizers.Nadam), {})
    rng = np.random.default_rng(0)
    start = [rng.normal(size=s).astype("float32") for s in [(3, 4, 5), (3, 1, 5)]]
    grads = [[rng.normal(size=w.shape).astype("float32") for w in start] for _ in range(4)]
    results, optimizers = [], []
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for kind in [keras.optimizers.Nadam, *[compiled_kind] * 6]:
            variables = [keras.Variable(w) for w in start]
            optimizer = kind(learning_rate=0.05)
            optimizer.build(variables)

            step = _stepper(optimizer, variables)
            for g in grads:
                step([tf.constant(x) for x in g])
            results.append([v.numpy() for v in variables])
            optimizers.append(optimizer)
    for weights in results[1:]:
        for got, want in zip(weights, results[0], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(results[0][0], start[0])  # it did update
    for optimizer in optimizers[1:]:
        attrs = optimizer._compiled.function_def.attr
        assert attrs["_XlaMustCompile"].b  # compiled by XLA
    assert not [r for r in caplog.records if "compiled" in r.getMessage()]
