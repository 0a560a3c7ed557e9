"""Fused packs: K trials of one architecture trained as one Keras model, one op per layer
for all members (``fuse``, ``fit_pack``), each member with its own hyperparameters, early
stopping, best weights and callbacks."""

from __future__ import annotations

from search.packs.fit import Member, fit_pack
from search.packs.kept import PACKS
from search.packs.model import PackedModel, fuse, why_not

__all__ = ["PACKS", "Member", "PackedModel", "fit_pack", "fuse", "why_not"]
