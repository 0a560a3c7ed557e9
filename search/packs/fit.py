"""Fit a pack: every member sees its own epoch's logs, stops on its own, keeps its best.

``fit_pack`` trains K compiled solo models (a ``Member`` each) as one fused model (``fuse``)
on the same batches. At each epoch's end each running member's callbacks see its logs
alone, as if it had trained by itself (the harness's recorder, Optuna's pruning, the chance
and NaN guards); a callback that raises (pruned, diverged, stuck at chance) stops that
member only, with that exception as its outcome. Early stopping runs per member as Keras'
``EarlyStopping(restore_best_weights=True)`` does. A member that stops gets its best weights
back in its solo model at once and is handed to ``ended`` (the harness closes its trial
there, while the others train on); the pack stops when no member runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from search.packs.kept import PACKS, Kept
from search.packs.model import PackedModel, Values

__all__ = ["Member", "fit_pack"]


@dataclass
class Member:
    """One trial in a pack: its solo ``model`` (initial weights in, best weights out), the
    callbacks that see its epochs, and its early stopping (``monitor``, ``mode``,
    ``patience``). Once it ends: ``error`` (what stopped it, or None), ``best_epoch``, and
    ``reused`` (whether its pack trained on functions traced before)."""

    model: keras.Model
    callbacks: Sequence[keras.callbacks.Callback] = ()
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 5
    error: BaseException | None = None
    best_epoch: int = 0
    stopped_epoch: int = 0
    best: float = math.nan
    wait: int = 0
    best_weights: list[list[np.ndarray]] | None = field(default=None, repr=False)
    reused: bool = False
    ended: bool = False

    def improved(self, value: float) -> bool:
        if math.isnan(self.best):
            return True
        return value > self.best if self.mode == "max" else value < self.best


class MemberEpochs(keras.callbacks.Callback):
    """Each running member's epoch, as if alone; early stopping per member."""

    def __init__(
        self, members: Sequence[Member], ended: Callable[[int], None] | None = None
    ) -> None:
        super().__init__()
        self.members = list(members)
        self.ended = ended
        self.lrs = [_learning_rate(m.model) for m in members]
        self.running = [True] * len(members)
        self.pack: PackedModel | None = None
        self.values: Values | None = None  # the pack's weights, read once an epoch
        self.seconds: list[float] = []  # each epoch's, validation included

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.started = time.perf_counter()
        for k, member in self._running():
            self._call(k, member, "on_epoch_begin", epoch, {})

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.started)
        self.values = None
        for k, member in self._running():
            own = {n: float(np.asarray(v).reshape(-1)[k]) for n, v in (logs or {}).items()}
            own["learning_rate"] = self.lrs[k]
            if self._call(k, member, "on_epoch_end", epoch, own):
                self._early_stopping(k, member, epoch, own)
        for k, member in enumerate(self.members):
            if not self.running[k] and not member.ended:
                self.end(k)
        if not any(self.running):
            self.model.stop_training = True

    def end(self, k: int) -> None:
        """Member k's best weights into its solo model; then ``ended`` hears of it."""
        assert self.pack is not None
        member = self.members[k]
        member.ended = True
        self.pack.give_back(k, member.model, self._values())
        if member.best_weights is not None:
            self.pack.load(member.model, member.best_weights)
        if self.ended is not None:
            self.ended(k)

    def _values(self) -> Values:
        assert self.pack is not None
        if self.values is None:
            self.values = self.pack.values()
        return self.values

    def _weights(self, k: int) -> list[list[np.ndarray]]:
        assert self.pack is not None
        return self.pack.member_weights(k, self._values())

    def _early_stopping(self, k: int, member: Member, epoch: int, logs: dict[str, float]) -> None:
        """Keras' EarlyStopping (restore_best_weights=True) for member k."""
        current = logs.get(member.monitor)
        if current is None:
            return
        if member.best_weights is None:
            member.best_weights, member.best_epoch = self._weights(k), epoch
        member.wait += 1
        if member.improved(current):
            member.best, member.best_epoch, member.wait = current, epoch, 0
            member.best_weights = self._weights(k)
            return
        if member.wait >= member.patience and epoch > 0:
            member.stopped_epoch = epoch
            self._stop(k)

    def _call(self, k: int, member: Member, hook: str, epoch: int, logs: dict[str, float]) -> bool:
        """A member's callbacks' ``hook``; an exception stops that member (its outcome)."""
        try:
            for callback in member.callbacks:
                getattr(callback, hook)(epoch, logs)
        except Exception as exc:  # pruned, diverged, stuck: this member's end, not the pack's
            member.error = exc
            self._stop(k)
            return False
        return True

    def _stop(self, k: int) -> None:
        self.running[k] = False
        assert self.pack is not None
        self.pack.stop(k)

    def _running(self) -> list[tuple[int, Member]]:
        return [(k, m) for k, m in enumerate(self.members) if self.running[k]]


def fit_pack(
    members: Sequence[Member],
    fit_inputs: Mapping[str, Any],
    epochs: int,
    seed: int | None = None,
    verbose: int = 0,
    jit_compile: bool | None = None,
    keep: int | None = None,
    ended: Callable[[int], None] | None = None,
) -> Kept:
    """Train ``members`` as one pack on ``fit_inputs`` (``x``, ``y``, ``validation_data``,
    ... as ``Model.fit`` takes them); each member's solo model ends with its best weights,
    and ``ended(k)`` is called as member k ends (as it stops, or when the fit does).
    ``keep``: how many packs this process keeps for later packs of their kind (None: as
    it is, 4 at first; 0: none, and the kept ones go). Returns the pack, kept or new.
    An exception out of the fit (an interrupt) leaves each member its weights, unended."""
    if keep is not None:
        PACKS.limit = keep
    kept = PACKS.pack_for([m.model for m in members], seed, jit_compile, epochs)
    pack = kept.pack
    epochs_of = MemberEpochs(members, ended)
    epochs_of.pack = pack
    for member in members:
        member.reused = kept.uses > 1
        for callback in member.callbacks:
            callback.set_model(member.model)
    try:
        pack.fit(**fit_inputs, epochs=epochs, callbacks=[epochs_of], verbose=verbose)
        kept.timed(epochs_of.seconds)
    except BaseException:
        values = pack.values()
        for k, member in enumerate(members):
            if not member.ended:
                pack.give_back(k, member.model, values)
                if member.best_weights is not None:
                    pack.load(member.model, member.best_weights)
        raise
    epochs_of.values = None
    for k, member in enumerate(members):  # those that ran every epoch
        if not member.ended:
            epochs_of.end(k)
    return kept


def _learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
