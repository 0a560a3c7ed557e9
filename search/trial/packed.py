"""Trials trained as fused packs (``pack=K``): the configs of K asked trials, grouped by
what a pack shares (the model's structure less learning rate, momentum and dropout rate;
batch size, epochs, compile settings), each group of two or more trained as one
``search.packs`` pack, a trial alone as usual (``fit_config``).

Each member is prepared as a trial alone is (its seed, its model and guards: ``prepare_fit``)
and finished as one (``finish_fit``: diagnostics, the test set, its values), so the trial's
run, its Optuna trial and its kept model are what they would be alone. Members see the same
batches, in the order of the pack's first member's seed; a member's early stopping, pruning,
chance and NaN guards are its own (``search.packs.fit``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import keras
from omegaconf import DictConfig

from search.data.splits import Splits
from search.packs import Member, fit_pack, why_not
from search.packs.model import shape_key
from search.trial.callbacks import EpochRecorder
from search.trial.fit import FitResult, Prepared, finish_fit, fit_config, prepare_fit
from search.trial.traces import start_fresh

__all__ = ["PackEntry", "fit_packed"]

log = logging.getLogger("search")
PackEntry = tuple[DictConfig, EpochRecorder, Sequence[keras.callbacks.Callback]]
_said: set[str] = set()  # why a model cannot be packed, said once per process


def fit_packed(entries: Sequence[PackEntry], splits: Splits) -> list[FitResult | BaseException]:
    """Each entry's result, or the exception that ended its trial (pruned, diverged, an
    error); an interrupt (Ctrl-C) ends them all and propagates."""
    prepared = [prepare_fit(cfg, splits, recorder, reuse=False) for cfg, recorder, _ in entries]
    results: list[FitResult | BaseException | None] = [None] * len(entries)
    for group in _groups(prepared):
        if len(group) == 1:
            k = group[0]
            results[k] = _alone(entries[k], splits)
            continue
        _fit_group([prepared[k] for k in group], [entries[k][2] for k in group], splits)
        for k in group:
            error = prepared[k].error
            results[k] = error if error is not None else _finish(prepared[k], splits, len(group))
    assert all(r is not None for r in results)  # every trial is in one group
    return [r for r in results if r is not None]


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


def _groups(prepared: Sequence[Prepared]) -> list[list[int]]:
    """Indices of the trials that can train as one pack, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for k, p in enumerate(prepared):
        train = p.cfg.train
        key = json.dumps([shape_key(p.model), int(train.batch_size), int(train.epochs)])
        groups.setdefault(key, []).append(k)
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


def _fit_group(
    prepared: Sequence[Prepared],
    callbacks: Sequence[Sequence[keras.callbacks.Callback]],
    splits: Splits,
) -> None:
    """Train one pack; each member's outcome goes on its ``Prepared`` (``error``)."""
    first = prepared[0].cfg
    members = [
        Member(
            p.model,
            [*p.guards, *own],
            monitor=p.task.monitor,
            mode=p.task.mode,
            patience=int(p.cfg.train.patience),
        )
        for p, own in zip(prepared, callbacks, strict=True)
    ]
    keep = int(first.train.traced_models)
    start_fresh(int(first.seed), keep_caches=keep > 0)  # the batches: its first seed's
    fit_pack(
        members,
        splits.fit_inputs(int(first.train.batch_size)),
        epochs=int(first.train.epochs),
        seed=int(first.seed),
        verbose=int(first.train.verbose),
        keep=min(keep, 4),
    )
    for p, member in zip(prepared, members, strict=True):
        p.error = member.error
