"""A pack's members, epoch by epoch: each sees its own epoch's logs, stops on its own,
keeps its best, and a waiting member takes the place of one that stopped.

At each epoch's end each running member's callbacks see its logs alone, as if it had
trained by itself, at its own epoch count (the harness's recorder, Optuna's pruning, the
chance and NaN guards); a callback that raises (pruned, diverged, stuck at chance) stops
that member only, with that exception as its outcome. Early stopping runs per member as
Keras' ``EarlyStopping(restore_best_weights=True)`` does, and a member stops after its own
``epochs``. A member that stops gets its best weights back in its solo model at once and is
handed to ``ended`` (the harness closes its trial there); then the first waiting member
joins at its place (``PackedModel.join``: its initial weights, a fresh optimizer state
there) and trains from the next epoch on, its epochs counted from 0. The pack stops when no
member runs and none waits.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from search.packs.model import PackedModel, Values

__all__ = ["Member", "MemberEpochs"]


@dataclass
class Member:
    """One trial in a pack: its solo ``model`` (initial weights in, best weights out), the
    callbacks that see its epochs, its early stopping (``monitor``, ``mode``, ``patience``)
    and its ``epochs``. ``joined`` and ``place``: the pack's epoch it started at and the
    place it took (None: the first free place; set then), so a re-train can start it at
    the same ones. Once it ends: ``error`` (what stopped it, or None), ``best_epoch`` (its
    own count), ``reused`` (whether its pack trained on functions traced before) and
    ``places`` (its pack's)."""

    model: keras.Model
    callbacks: Sequence[keras.callbacks.Callback] = ()
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 5
    epochs: int = 0  # 0: the pack's
    joined: int | None = None
    place: int | None = None
    error: BaseException | None = None
    best_epoch: int = 0
    stopped_epoch: int = 0
    best: float = math.nan
    wait: int = 0
    best_weights: list[list[np.ndarray]] | None = field(default=None, repr=False)
    reused: bool = False
    places: int = 1  # its pack's
    ended: bool = False

    def improved(self, value: float) -> bool:
        if math.isnan(self.best):
            return True
        return value > self.best if self.mode == "max" else value < self.best


class MemberEpochs(keras.callbacks.Callback):
    """Each running member's epoch, as if alone; early stopping per member; waiting
    members take freed places. ``at[p]``: the member at place p (None: an idle place)."""

    def __init__(
        self,
        pack: PackedModel,
        members: Sequence[Member],
        ended: Callable[[int], None] | None = None,
        more: Callable[[Callable[[keras.Model], bool]], Member | None] | None = None,
    ) -> None:
        super().__init__()
        self.pack = pack
        self.members = list(members)
        self.ended = ended
        self.more = more  # a member for a freed place once none waits (None: no more)
        self.lrs = [_learning_rate(m.model) for m in members]
        self.at = _placed(pack.members, self.members)
        self.waiting = deque(i for i in range(len(members)) if i not in self.at)
        self.running = [i in self.at and not members[i].joined for i in range(len(members))]
        for i in self.at:
            if i is not None:
                members[i].joined = members[i].joined or 0
        self.values: Values | None = None  # the pack's weights, read once an epoch
        self.seconds: list[float] = []  # each epoch's, validation included

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.started = time.perf_counter()
        for p, i in self._running():
            self._call(p, i, "on_epoch_begin", epoch, {})

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.started)
        self.values = None
        for p, i in self._running():
            own = {n: float(np.asarray(v).reshape(-1)[p]) for n, v in (logs or {}).items()}
            own["learning_rate"] = self.lrs[i]
            member = self.members[i]
            if self._call(p, i, "on_epoch_end", epoch, own):
                self._early_stopping(p, i, epoch - (member.joined or 0), own)
            if self.running[i] and epoch - (member.joined or 0) + 1 >= member.epochs:
                self._stop(p, i)  # its epochs are done
        for i in [i for i in self.at if i is not None]:
            joined = self.members[i].joined
            started = joined is not None and joined <= epoch  # not one still to start
            if started and not self.running[i] and not self.members[i].ended:
                self.end(i)
        self._fill(epoch + 1)
        if not any(self.running) and not self._waits(epoch + 1):
            self.model.stop_training = True

    def end(self, i: int) -> None:
        """Member i's best weights into its solo model; then ``ended`` hears of it."""
        self.members[i].ended = True
        self.keep_best(i)
        if self.ended is not None:
            self.ended(i)

    def keep_best(self, i: int) -> None:
        """Member i's weights now, then its best if it has some, into its solo model."""
        member = self.members[i]
        self.pack.give_back(self.at.index(i), member.model, self._values())
        if member.best_weights is not None:
            self.pack.load(member.model, member.best_weights)

    def bound(self) -> int:
        """Epochs enough for every member, were each to run all its own one after another
        (with ``more``: no bound; the pack stops when none runs)."""
        if self.more is not None:
            return 2**31 - 1
        return max(m.joined or 0 for m in self.members) + sum(m.epochs for m in self.members)

    def _fill(self, epoch: int) -> None:
        """Members start at ``epoch``: one placed to start then, a waiting one at each
        place whose member ended."""
        for p, i in enumerate(self.at):
            if i is not None and self.members[i].joined == epoch and not self.running[i]:
                self._join(p, i)
            elif i is None or self.members[i].ended:
                self._take(p, epoch)

    def _take(self, p: int, epoch: int) -> None:
        """The first waiting member, or one more (``more``), starts at place p at ``epoch``."""
        if not self.waiting and self.more is not None:
            member = self.more(lambda model: self.pack.fits([model], 1))
            if member is None:
                self.more = None  # the study has enough, or it fits another pack
                return
            self.members.append(member)
            self.lrs.append(_learning_rate(member.model))
            self.running.append(False)
            self.waiting.append(len(self.members) - 1)
        if self.waiting:
            i = self.at[p] = self.waiting.popleft()
            self.members[i].joined, self.members[i].place = epoch, p
            self._join(p, i)

    def _join(self, p: int, i: int) -> None:
        running = [q for q, j in self._running()]
        self.pack.join(p, self.members[i].model, running)
        self.running[i], self.values = True, None

    def _waits(self, epoch: int) -> bool:
        placed = (self.members[i] for i in self.at if i is not None)
        return bool(self.waiting) or any(m.joined is not None and m.joined >= epoch for m in placed)

    def _values(self) -> Values:
        if self.values is None:
            self.values = self.pack.values()
        return self.values

    def _early_stopping(self, p: int, i: int, epoch: int, logs: dict[str, float]) -> None:
        """Keras' EarlyStopping (restore_best_weights=True) for member i at place p."""
        member = self.members[i]
        current = logs.get(member.monitor)
        if current is None:
            return
        if member.best_weights is None:
            member.best_weights, member.best_epoch = self._weights(p), epoch
        member.wait += 1
        if member.improved(current):
            member.best, member.best_epoch, member.wait = current, epoch, 0
            member.best_weights = self._weights(p)
            return
        if member.wait >= member.patience and epoch > 0:
            member.stopped_epoch = epoch
            self._stop(p, i)

    def _weights(self, p: int) -> list[list[np.ndarray]]:
        return self.pack.member_weights(p, self._values())

    def _call(self, p: int, i: int, hook: str, epoch: int, logs: dict[str, float]) -> bool:
        """Member i's callbacks' ``hook`` at its own epoch; an exception stops it (its
        outcome)."""
        member = self.members[i]
        try:
            for callback in member.callbacks:
                getattr(callback, hook)(epoch - (member.joined or 0), logs)
        except Exception as exc:  # pruned, diverged, stuck: this member's end, not the pack's
            member.error = exc
            self._stop(p, i)
            return False
        return True

    def _stop(self, p: int, i: int) -> None:
        self.running[i] = False
        self.pack.stop(p)

    def _running(self) -> list[tuple[int, int]]:
        """(place, member) of each running member."""
        return [(p, i) for p, i in enumerate(self.at) if i is not None and self.running[i]]


def _placed(places: int, members: Sequence[Member]) -> list[int | None]:
    """The member at each place as the pack starts (None: idle): each at its ``place``
    if it has one (a re-train), else the first ones in order (their ``place`` set)."""
    at: list[int | None] = [None] * places
    if members and members[0].place is not None:
        for i, member in enumerate(members):
            at[member.place or 0] = i
        return at
    for i, member in enumerate(members[:places]):
        at[i], member.place = i, i
    return at


def _learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
