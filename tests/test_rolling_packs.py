"""Rolling packs: more members than places, a waiting member taking the place of one that
stopped. A member that joins late trains like the same trial alone, and one re-trained
from the pack's seed and the epoch it joined at trains as it did in the pack."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from search.packs import PACKS, Member, fit_pack
from tests.test_packs import EPOCHS, Rows, _alone, _inputs, _model

EARLY = ("optimizer.learning_rate=1e-9",)  # learns nothing: stops after patience 1


@pytest.fixture(autouse=True)
def _no_kept_packs() -> Iterator[None]:
    PACKS.clear()
    yield
    PACKS.clear()


def _seeded() -> None:
    """The shuffle from the same seed once the pack is built, as the harness seeds it."""
    keras.utils.set_random_seed(7)


def _rolling(
    tmp_path: Path, trials: list[tuple[int, tuple[str, ...]]], places: int, **inputs: Any
) -> tuple[list[Member], list[Rows], list[int]]:
    members, rows, ended = [], [], []
    for seed, overrides in trials:
        model, splits = _model(tmp_path, seed, *overrides)
        rows.append(Rows())
        members.append(Member(model, [rows[-1]], monitor="val_accuracy", mode="max", patience=1))
    fit_pack(
        members,
        {**_inputs(splits), **inputs},
        epochs=EPOCHS,
        seed=7,
        places=places,
        ended=ended.append,
        seeded=_seeded,
    )
    return members, rows, ended


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param((), id="nadam"),  # its bias corrections count the member's own steps
        pytest.param(
            ("model.batch_norm=true", "optimizer.name=sgd", "optimizer.momentum=0.9"),
            id="bn_sgd_momentum",
        ),
    ],
)
def test_a_member_that_joins_late_trains_like_the_same_trial_alone(
    tmp_path: Path, overrides: tuple[str, ...]
) -> None:
    """Two places, three members: the first stops early, the third takes its place while
    the second trains on; the second and third each match their run alone (same batches,
    no dropout) within 1e-5, epoch by epoch."""
    trials = [(1, (*overrides, *EARLY)), (2, overrides), (3, overrides)]
    members, rows, ended = _rolling(tmp_path, trials, places=2)
    assert len(rows[0].rows) < EPOCHS == len(rows[1].rows) == len(rows[2].rows)
    assert members[2].joined == len(rows[0].rows) and ended[0] == 0
    for k in (1, 2):
        alone = _alone(tmp_path, trials[k][0], *overrides)
        for name in ("loss", "val_loss", "val_accuracy"):
            packed = [row[name] for row in rows[k].rows]
            assert packed == pytest.approx(alone[name], abs=1e-5), (k, name)


@pytest.mark.parametrize("k", [1, 2], ids=["beside_batch_norm", "late"])
def test_a_member_re_trained_at_its_place_from_the_packs_seed_trains_bit_for_bit_as_in_the_pack(
    tmp_path: Path, k: int
) -> None:
    """Shuffled batches, dropout, a batch-norm member beside it: what a member saw depends
    on the pack's seed, the epoch it joined at, and (in the last bits of float sums) its
    place and the pack's size, not on what the other places train. A pack of as many
    places from the same seed, the member at its place from its epoch, the others idle,
    gives it again bit for bit."""
    dropout = ("model.dropout_rate=0.2", "optimizer.learning_rate=0.01")
    trials = [(1, (*dropout, *EARLY, "model.batch_norm=true")), (2, dropout), (3, dropout)]
    members, rows, _ = _rolling(tmp_path, trials, places=2, shuffle=True)
    joined, place = members[k].joined, members[k].place
    assert (joined, place) == ((0, 1) if k == 1 else (len(rows[0].rows), 0))
    model, splits = _model(tmp_path, trials[k][0], *dropout)
    again = Rows()
    member = Member(
        model, [again], monitor="val_accuracy", mode="max", patience=1, joined=joined, place=place
    )
    inputs = {**_inputs(splits), "shuffle": True}
    fit_pack([member], inputs, epochs=EPOCHS, seed=7, places=members[k].places, seeded=_seeded)
    assert member.places == 2 and len(again.rows) == len(rows[k].rows)
    assert again.rows == rows[k].rows
    for a, b in zip(model.get_weights(), members[k].model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


class _CtrlC(Rows):
    """Ctrl-C at the end of its member's second epoch."""

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt


def test_a_member_asked_into_a_freed_place_trains_there_and_an_interrupt_keeps_its_weights(
    tmp_path: Path,
) -> None:
    """One place: the first member stops early, the place asks one more (given what fits),
    which joins at the next epoch; a Ctrl-C in its epochs propagates as itself, and the
    new member's solo model holds the weights it trained to, not its initial ones."""
    first, splits = _model(tmp_path, 1, *EARLY)
    joiner, _ = _model(tmp_path, 2)
    initial = [w.copy() for w in joiner.get_weights()]
    asked: list[bool] = []

    def more(fits: Callable[[keras.Model], bool]) -> Member | None:
        asked.append(fits(joiner))
        return Member(joiner, [_CtrlC()], monitor="val_accuracy", mode="max") if asked else None

    members = [Member(first, [Rows()], monitor="val_accuracy", mode="max", patience=1)]
    with pytest.raises(KeyboardInterrupt):
        fit_pack(members, _inputs(splits), epochs=EPOCHS, seed=7, places=1, more=more)
    assert asked == [True] and members[0].ended
    changed = [not np.array_equal(a, b) for a, b in zip(joiner.get_weights(), initial)]
    assert any(changed)
