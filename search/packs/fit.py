"""Fit a pack: compiled solo models (a ``Member`` each) trained as one fused model
(``fuse``) on the same batches, ``places`` of them at a time; each member sees its own
epochs, stops on its own and keeps its best (``search.packs.members``), and a waiting
member takes the place of one that stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras

from search.packs.kept import PACKS, Kept
from search.packs.members import Member, MemberEpochs

__all__ = ["Member", "fit_pack"]


def fit_pack(
    members: Sequence[Member],
    fit_inputs: Mapping[str, Any],
    epochs: int,
    seed: int | None = None,
    verbose: int = 0,
    jit_compile: bool | None = None,
    keep: int | None = None,
    ended: Callable[[int], None] | None = None,
    places: int | None = None,
    seeded: Callable[[], None] | None = None,
    more: Callable[[Callable[[keras.Model], bool]], Member | None] | None = None,
) -> Kept:
    """Train ``members`` as one pack of ``places`` (None: one each) on ``fit_inputs``
    (``x``, ``y``, ``validation_data``, ... as ``Model.fit`` takes them), each for its own
    ``epochs`` (0: ``epochs``); each member's solo model ends with its best weights, and
    ``ended(i)`` is called as member i ends. ``keep``: how many packs this process keeps for
    later packs of their kind (None: as it is, 4 at first; 0: none, and the kept ones go).
    ``more``: once no member waits, a member for a freed place, given what fits the pack
    (None: none; then none is asked again). Members that have a ``place`` (a re-train)
    train there, in a pack of exactly ``places`` whose other places idle: a member's
    figures depend on its place and the pack's size in the last bits of float sums, not on
    what the other places train.
    Returns the pack, kept or new. ``seeded`` seeds the process's generators once the pack
    is built, before the fit (the batches' shuffle must not depend on what the pack's
    building drew: a re-train builds another pack). An exception out of the fit (an
    interrupt) leaves each member its weights, unended."""
    if keep is not None:
        PACKS.limit = keep
    models, size, exact = _models(members, places)
    kept = PACKS.pack_for(models, seed, jit_compile, epochs, size, exact)
    pack = kept.pack

    def taken(member: Member) -> Member:
        member.epochs = member.epochs or epochs
        member.reused, member.places = kept.uses > 1, pack.members
        for callback in member.callbacks:
            callback.set_model(member.model)
        return member

    def joining(fits: Callable[[keras.Model], bool]) -> Member | None:
        member = more(fits) if more is not None else None
        return None if member is None else taken(member)

    epochs_of = MemberEpochs(pack, members, ended, joining if more is not None else None)
    for p, i in enumerate(epochs_of.at):
        if i is None or not epochs_of.running[i]:
            pack.stop(p)  # idle, or starts later (a re-train of a member that joined late)
    for member in members:
        taken(member)
    if seeded is not None:
        seeded()
    try:
        pack.fit(**fit_inputs, epochs=epochs_of.bound(), callbacks=[epochs_of], verbose=verbose)
        kept.timed(epochs_of.seconds)
    except BaseException:
        epochs_of.values = None
        for i in epochs_of.at:  # its members: those asked into freed places too
            if i is not None and not epochs_of.members[i].ended:
                epochs_of.keep_best(i)
        raise
    epochs_of.values = None
    for i in epochs_of.at:  # none should be left: each stops after its epochs
        if i is not None and not epochs_of.members[i].ended:
            epochs_of.end(i)
    return kept


def _models(members: Sequence[Member], places: int | None) -> tuple[list[keras.Model], int, bool]:
    """The models a pack starts from, its size, and whether that size is exact: each
    member's at its ``place`` in a pack of ``places`` (idle places: the first's), or the
    members' in order on at most ``places``."""
    if members[0].place is None or places is None:
        return [m.model for m in members], min(places or len(members), len(members)), False
    at = {m.place: m.model for m in members}
    return [at.get(p, members[0].model) for p in range(places)], places, True
