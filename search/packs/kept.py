"""Packs kept by structure and size, so a later pack of the same kind trains on the
functions it traced before (``PackedModel.restart`` takes the new members' weights, rates
and a fresh optimizer state). The pack's counterpart of ``search.trial.traces``."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence

import keras

from search.packs.chain import template_kinds
from search.packs.model import PackedModel, fuse, shape_key

__all__ = ["PACKS", "KeptPacks"]


class KeptPacks:
    def __init__(self, limit: int = 4) -> None:
        self.limit = limit  # the least recently used goes first; 0 keeps none
        self._packs: OrderedDict[str, PackedModel] = OrderedDict()
        self.reused = 0  # packs that trained on a kept one

    def pack_for(
        self, models: Sequence[keras.Model], seed: int | None, jit_compile: bool | None = None
    ) -> PackedModel:
        """A pack of ``models`` holding their initial state: a kept one of their kind, or
        a new one (kept for later packs while ``limit`` allows)."""
        momentum = any(getattr(m.optimizer, "momentum", 0.0) for m in models)
        kinds = template_kinds(models)  # where the dropout and batch norm layers are
        key = json.dumps([shape_key(models[0]), kinds, len(models), bool(momentum), jit_compile])
        pack = self._packs.pop(key, None)
        if pack is None:
            pack = fuse(models, seed=seed, jit_compile=jit_compile)
        else:
            pack.restart(models, seed)
            self.reused += 1
        if self.limit > 0:
            self._packs[key] = pack
            while len(self._packs) > self.limit:
                self._packs.popitem(last=False)
        return pack

    def clear(self) -> None:
        self._packs.clear()

    def __len__(self) -> int:
        return len(self._packs)


PACKS = KeptPacks()  # this process's
