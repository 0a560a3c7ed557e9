"""Packs kept by structure, so a later pack of the same kind trains on the functions it
traced before (``PackedModel.restart`` takes the new members' weights, rates and a fresh
optimizer state). The pack's counterpart of ``search.trial.traces``.

A kept pack takes any later members it ``fits``: a chain with a dropout or batch norm
where none of them has one (a rate of 0, batch norm off), SGD momentum where they have
none (a momentum of 0), and more places than members, whose extra places never train.
Those places still cost their share of each step: a pack of 8 takes 6 members when the
steps that 2 idle places add (its measured epoch seconds x 2/8 x the epochs its last fit
ran) cost less than the tracing that a new pack of 6 would (the kept pack's first epoch
less its later ones, measured).
"""

from __future__ import annotations

import json
import statistics
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import keras

from search.packs.fusable import shape_key
from search.packs.model import PackedModel, fuse

__all__ = ["PACKS", "Kept", "KeptPacks"]


@dataclass
class Kept:
    """A kept pack and what its fits measured: the seconds its first fit spent tracing
    (its first epoch less its median epoch), its last fit's median epoch and length."""

    pack: PackedModel
    kind: str  # what its members share: ``shape_key`` and the compile settings
    momentum: bool
    trace_s: float = 0.0
    epoch_s: float = 0.0
    epochs_run: int = 0  # by its last fit
    uses: int = 0  # the packs of trials it was handed out for

    def takes(self, models: Sequence[keras.Model], kind: str, momentum: bool, size: int) -> bool:
        fits = self.pack.fits(models, size)
        return kind == self.kind and self.momentum >= momentum and fits

    def idle_s(self, members: int, epochs: int) -> float:
        """What its places beyond ``members`` would cost over ``epochs`` at most, or over
        as many epochs as its last fit ran (members stop early: 100 epochs allowed, 30 run)."""
        epochs = min(epochs, self.epochs_run or epochs)
        return self.epoch_s * (self.pack.members - members) / self.pack.members * epochs

    def timed(self, epochs: Sequence[float]) -> None:
        """A whole fit's epoch seconds."""
        if not epochs:
            return
        typical = statistics.median(epochs[1:] or epochs)
        self.epoch_s, self.epochs_run = typical, len(epochs)
        if self.uses == 1 and len(epochs) > 1:
            self.trace_s = max(0.0, epochs[0] - typical)


class KeptPacks:
    def __init__(self, limit: int = 4) -> None:
        self.limit = limit  # the least recently used goes first; 0 keeps none
        self._packs: OrderedDict[int, Kept] = OrderedDict()
        self.reused = 0  # packs that trained on a kept one

    def pack_for(
        self,
        models: Sequence[keras.Model],
        seed: int | None,
        jit_compile: bool | None = None,
        epochs: int = 1,
        size: int | None = None,
        exact: bool = False,
    ) -> Kept:
        """A pack for ``models`` (all of them fit it), ``size`` places wanted (None: one
        each; ``exact``: no more), holding the initial state of as many as it has places:
        the smallest kept one that takes them and whose idle places cost less than a new
        pack's tracing, or a new one (kept for later packs while ``limit`` allows)."""
        size = size or len(models)
        kind = json.dumps([shape_key(models[0]), jit_compile])
        momentum = any(getattr(m.optimizer, "momentum", 0.0) for m in models)
        fitting = [
            (kept.pack.members, key)
            for key, kept in self._packs.items()
            if kept.takes(models, kind, momentum, size)
            and kept.idle_s(size, epochs) <= kept.trace_s
            and (kept.pack.members == size or not exact)
        ]
        if fitting:
            key = min(fitting)[1]
            kept = self._packs.pop(key)
            kept.pack.restart(models[: kept.pack.members], seed)
            self.reused += 1
        else:
            pack = fuse(models, seed=seed, jit_compile=jit_compile, size=size)
            kept = Kept(pack, kind, momentum)
            key = id(kept.pack)
        kept.uses += 1
        if self.limit > 0:
            self._packs[key] = kept
            while len(self._packs) > self.limit:
                self._packs.popitem(last=False)
        return kept

    def clear(self) -> None:
        self._packs.clear()

    def __len__(self) -> int:
        return len(self._packs)


PACKS = KeptPacks()  # this process's
