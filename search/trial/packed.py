"""Trials trained as fused packs (``pack=K``): the configs of the trials asked together (up
to ``pack_queue`` x K), grouped by what a pack shares (the model's structure less learning rate,
momentum, dropout rate and batch norm; batch size, epochs, compile settings), each group of
two or more trained as one ``search.packs`` pack of ``places_for`` places (at most K; a
trial waiting for a place takes that of one that stopped), a trial alone as usual
(``fit_config``).

Each member is prepared as a trial alone is (its seed, its model and guards: ``prepare_fit``)
and finished as one (``finish_fit``: diagnostics, the test set, its values) as soon as it
stops, so the trial's run, its Optuna trial and its kept model are what they would be alone.
Members see the same batches, in the order of the pack's first member's seed; a member's
early stopping, pruning, chance and NaN guards are its own (``search.packs.members``). A
packed trial's config records its pack's seed, the pack's epoch it started at and its
place of how many (``train.pack_seed``, ``train.pack_epoch``, ``train.pack_place``,
``train.pack_places``): re-trained from its export, it trains at that place of a pack of as
many places from that seed, starting at that epoch (``fit_config``), and so sees the
batches and dropout draws it saw here, bit for bit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

import keras
from omegaconf import DictConfig

from search.config.packing import places_for
from search.data.splits import Splits
from search.packs import why_not
from search.packs.fusable import shape_key
from search.trial.callbacks import EpochRecorder
from search.trial.fit import (
    FitResult,
    Prepared,
    finish_fit,
    fit_config,
    fit_members,
    prepare_fit,
)

__all__ = ["More", "PackEntry", "fit_packed", "forget_notes", "packs_pay"]

log = logging.getLogger("search")
PackEntry = tuple[DictConfig, EpochRecorder, Sequence[keras.callbacks.Callback]]
More = Callable[[], tuple[int, PackEntry] | None]  # one more entry (its k), or None: enough
_said: set[str] = set()  # why a model cannot be packed, said once per process


def packs_pay() -> bool:
    """False once a trial's model in this process had no fused form: ``pack=auto`` then
    asks one trial at a time (asking 8 that train one by one only blinds the sampler)."""
    return not _said


def forget_notes() -> None:
    """Forget the models said to have no fused form (a notebook's next call starts afresh)."""
    _said.clear()


def fit_packed(
    entries: Sequence[PackEntry],
    splits: Splits,
    done: Callable[[int, FitResult | BaseException], None],
    more: More | None = None,
) -> None:
    """Hand ``done`` each entry's result, or the exception that ended its trial (its model
    would not build, pruned, diverged, an error), as soon as it has one: a member that
    stops early is finished while its pack trains on, and its place takes a trial from
    ``more`` (k: the next entry) once none waits; one that does not fit the pack trains
    after it. An interrupt (Ctrl-C) propagates; the entries not handed to ``done`` by then
    are the caller's to close."""
    all_entries = dict(enumerate(entries))
    prepared: dict[int, Prepared] = {}
    for k, (cfg, recorder, _) in all_entries.items():
        try:  # a trial whose model does not build fails alone
            prepared[k] = prepare_fit(cfg, splits, recorder, reuse=False)
        except Exception as exc:
            done(k, exc)
    queue = _groups(prepared)
    while queue:
        group = queue.pop(0)
        if len(group) == 1:
            done(group[0], _alone(all_entries[group[0]], splits))
            continue
        aside: list[int] = []

        def ended(i: int, group: list[int] = group) -> None:
            k = group[i]
            error = prepared[k].error
            done(k, error if error is not None else _finish(prepared[k], splits, len(group)))

        def join(
            fits: Callable[[keras.Model], bool], group: list[int] = group, aside: list[int] = aside
        ) -> tuple[Prepared, Sequence[keras.callbacks.Callback]] | None:
            got = more() if more is not None and not aside else None
            if got is None:
                return None
            k, entry = got
            all_entries[k] = entry
            try:
                prepared[k] = prepare_fit(entry[0], splits, entry[1], reuse=False, in_fit=True)
            except Exception as exc:
                done(k, exc)
                return None
            if _key(prepared[k]) != _key(prepared[group[0]]) or not fits(prepared[k].model):
                aside.append(k)  # it trains after this pack; no more are asked into it
                return None
            group.append(k)
            return prepared[k], entry[2]

        first = prepared[group[0]].cfg
        seed = int(first.seed)  # the batches: its first trial's seed
        places = places_for(first, len(group))
        members = [prepared[k] for k in group]
        fit_members(members, [all_entries[k][2] for k in group], splits, seed, ended, places, join)
        queue.extend(_groups({k: prepared[k] for k in aside}))


def _alone(entry: PackEntry, splits: Splits) -> FitResult | BaseException:
    cfg, recorder, callbacks = entry
    try:
        return fit_config(cfg, splits, recorder, callbacks)
    except Exception as exc:
        return exc


def _finish(prepared: Prepared, splits: Splits, size: int) -> FitResult | BaseException:
    try:
        return finish_fit(prepared, splits, packed=size)
    except Exception as exc:
        return exc


def _groups(prepared: dict[int, Prepared]) -> list[list[int]]:
    """Indices of the trials that can train as one pack, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for k, p in prepared.items():
        groups.setdefault(_key(p), []).append(k)
    out: list[list[int]] = []
    for members in groups.values():
        reason = why_not([prepared[k].model for k in members])
        if reason is None:
            out.append(members)
            continue
        if reason not in _said:
            _said.add(reason)
            log.warning(f"note: trials of this model train one at a time, not packed: {reason}")
        out.extend([k] for k in members)
    return out


def _key(prepared: Prepared) -> str:
    """What trials of one pack share: the model's structure, batch size and epochs."""
    train = prepared.cfg.train
    return json.dumps([shape_key(prepared.model), int(train.batch_size), int(train.epochs)])
