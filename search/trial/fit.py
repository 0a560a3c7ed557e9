"""Train one configuration: seed, build, compile, fit with callbacks, evaluate.

Used by the study's objective (one call per trial) and by ``search.train`` (a re-train).
The task (``search.config.task``) decides what early stopping watches and in which
direction, which epoch is best and whether chance-level detection applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from search.config.task import Task, task_of
from search.data.splits import Splits
from search.packs import PACKS, Member, fit_pack
from search.trial.build import build_compiled, loss_function
from search.trial.callbacks import EpochRecorder
from search.trial.diagnostics import (
    ChanceDetector,
    dead_unit_fractions,
    gradient_norms,
    gradient_summary,
)
from search.trial.evaluation import evaluate_test_set
from search.trial.history import objective_values, summarize_epochs
from search.trial.traces import TRACED, start_fresh

__all__ = [
    "FitResult",
    "Prepared",
    "finish_fit",
    "fit_config",
    "fit_members",
    "prepare_fit",
]


@dataclass
class FitResult:
    """What a fit produced: ``value`` (the best epoch's ``metric``), final ``metrics``,
    ``history`` (one row per epoch), ``tables`` and the ``model`` (the best epoch's
    weights, restored by early stopping)."""

    value: float
    history: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    model: keras.Model | None = None
    values: tuple[float, ...] = ()  # one per objective (``search.config.objectives``)


@dataclass
class Prepared:
    """A trial's model, built and compiled from its seed, ready to fit: the callbacks that
    guard it (the recorder first) and its gradients before training."""

    cfg: DictConfig
    task: Task
    model: keras.Model
    recorder: EpochRecorder
    guards: list[keras.callbacks.Callback]
    reused: bool = False
    probe: tuple[Any, Any] | None = None
    grads_start: pd.DataFrame | None = None
    error: BaseException | None = None  # what ended it in a pack (pruned, diverged, ...)
    places: int = 1  # its pack's places (1: alone)


# a trial for a pack's freed place, prepared, with its own callbacks; given what fits
Joining = Callable[
    [Callable[[keras.Model], bool]],
    "tuple[Prepared, Sequence[keras.callbacks.Callback]] | None",
]


def prepare_fit(
    cfg: DictConfig,
    splits: Splits,
    recorder: EpochRecorder,
    reuse: bool = True,
    in_fit: bool = False,
) -> Prepared:
    """Seed, build and compile the trial's model (one kept of its structure when ``reuse``:
    ``search.trial.traces``), its guards and its gradients before training. ``in_fit``:
    while a pack trains (it joins it), whose kernels (the shuffle's state) must stay."""
    kept = len(TRACED) > 0 or len(PACKS) > 0
    keep = in_fit or (int(cfg.train.traced_models) > 0 and kept)
    start_fresh(int(cfg.seed), keep_caches=keep)
    model = build_compiled(cfg, splits)
    reused = TRACED.reused
    if reuse:
        model = TRACED.take(model, int(cfg.train.traced_models))  # one of this structure, if kept
    prepared = Prepared(cfg, task_of(cfg), model, recorder, [recorder], TRACED.reused > reused)
    diag = cfg.diagnostics
    if diag.enabled:
        if not prepared.task.chance_off() and splits.num_classes:
            prepared.guards.append(_chance_detector(diag, splits.num_classes))
        prepared.probe = splits.probe("train", int(diag.probe_examples))
        prepared.grads_start = gradient_norms(model, *prepared.probe, loss_function(model))
    return prepared


def fit_config(
    cfg: DictConfig,
    splits: Splits,
    recorder: EpochRecorder,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> FitResult:
    """Seed, build and fit; early stopping restores the best weights; test set evaluated last.

    Raises ``TrialDiverged`` on a NaN/inf loss and ``StuckAtChance`` when the validation
    figures sit at chance level. Exceptions raised by ``callbacks`` (a pruning callback)
    propagate; ``recorder.rows`` then holds the epochs done. A config that names the pack it
    trained in (``train.pack_seed``: an exported packed trial) trains in a pack from that
    seed, at the place it had (``train.pack_place`` of ``train.pack_places``, the others
    idle; an export without them: a pack of one) from the pack's epoch it started at
    (``train.pack_epoch``): the batches and dropout draws it saw in its pack, so its value
    is reproduced.
    """
    pack_seed = OmegaConf.select(cfg, "train.pack_seed")
    if pack_seed is not None:
        prepared = prepare_fit(cfg, splits, recorder, reuse=False)
        places = OmegaConf.select(cfg, "train.pack_places")
        fit_members([prepared], [callbacks], splits, int(pack_seed), places=places)
        if prepared.error is not None:
            raise prepared.error
        return finish_fit(prepared, splits)
    prepared = prepare_fit(cfg, splits, recorder)
    early = keras.callbacks.EarlyStopping(
        monitor=prepared.task.monitor,
        mode=prepared.task.mode,
        patience=int(cfg.train.patience),
        restore_best_weights=True,
    )
    prepared.model.fit(
        **splits.fit_inputs(int(cfg.train.batch_size)),
        epochs=int(cfg.train.epochs),
        callbacks=[*prepared.guards, early, *callbacks],
        verbose=int(cfg.train.verbose),
    )
    return finish_fit(prepared, splits)


def fit_members(
    prepared: Sequence[Prepared],
    callbacks: Sequence[Sequence[keras.callbacks.Callback]],
    splits: Splits,
    seed: int,
    ended: Callable[[int], None] | None = None,
    places: int | None = None,
    more: Joining | None = None,
) -> None:
    """Train prepared trials of one structure, batch size and epochs as one pack of
    ``places`` (None: one each; fewer: the others wait for a place) whose batches and
    dropout draws come from ``seed`` (``search.packs``); each trial's outcome goes on its
    ``Prepared`` (``error``) and its config records ``train.pack_seed``, the pack's epoch
    it started at (``train.pack_epoch``) and its place of how many (``train.pack_place``,
    ``train.pack_places``; a config that has them starts there), as it ends: then
    ``ended(k)`` hears of trial k (its model holds its best weights). ``more``: a trial for
    a freed place, prepared (k: the next), given what fits the pack (None: none)."""
    first, prepared = prepared[0].cfg, list(prepared)
    recorded = places is not None
    members = [_member(p, own, recorded) for p, own in zip(prepared, callbacks, strict=True)]

    def join(fits: Callable[[keras.Model], bool]) -> Member | None:
        got = more(fits) if more is not None else None
        if got is None:
            return None
        prepared.append(got[0])
        members.append(_member(*got, recorded=False))
        return members[-1]

    def record(k: int) -> None:
        prepared[k].error, prepared[k].reused = members[k].error, members[k].reused
        prepared[k].places = members[k].places
        prepared[k].cfg.train.pack_seed = seed
        prepared[k].cfg.train.pack_epoch = members[k].joined
        prepared[k].cfg.train.pack_place = members[k].place
        prepared[k].cfg.train.pack_places = members[k].places

    def end(k: int) -> None:
        record(k)
        if ended is not None:
            ended(k)

    keep = int(first.train.traced_models)
    start_fresh(seed, keep_caches=keep > 0)
    try:
        fit_pack(
            members,
            splits.fit_inputs(int(first.train.batch_size)),
            epochs=int(first.train.epochs),
            seed=seed,
            verbose=int(first.train.verbose),
            keep=min(keep, 4),
            ended=end,
            places=places,
            seeded=lambda: start_fresh(seed, keep_caches=keep > 0),  # the shuffle from seed
            more=join if more is not None else None,
        )
    finally:
        for k in range(len(prepared)):
            record(k)


def _member(prepared: Prepared, own: Sequence[keras.callbacks.Callback], recorded: bool) -> Member:
    """A prepared trial as a pack's member; ``recorded``: at the epoch and place its config
    records (a re-train)."""
    cfg = prepared.cfg
    return Member(
        prepared.model,
        [*prepared.guards, *own],
        monitor=prepared.task.monitor,
        mode=prepared.task.mode,
        patience=int(cfg.train.patience),
        joined=_recorded(cfg, "epoch"),
        place=_recorded(cfg, "place") if recorded else None,
    )


def _recorded(cfg: DictConfig, what: str) -> int | None:
    """The pack's epoch a re-trained packed trial starts at, or its place (``what``) in
    its pack (None: a trial of a study, or an export that lacks it)."""
    value = OmegaConf.select(cfg, f"train.pack_{what}")
    if OmegaConf.select(cfg, "train.pack_seed") is None or value is None:
        return None
    return int(value)


def finish_fit(prepared: Prepared, splits: Splits, packed: int = 1) -> FitResult:
    """What a fit produced (its model holds the best epoch's weights): the epochs'
    summary, the diagnostics after training, the test set's figures, the objectives'
    values. ``packed``: the number of trials its pack trained (1: alone)."""
    cfg, task, model, rows = prepared.cfg, prepared.task, prepared.model, prepared.recorder.rows
    metrics = summarize_epochs(rows, task.monitor, maximize=task.maximize)
    metrics["params"] = float(model.count_params())
    metrics["reused_traces"] = float(prepared.reused)  # trained on graphs traced before
    metrics["packed_trials"] = float(packed)
    metrics["pack_places"] = float(prepared.places)
    tables: dict[str, pd.DataFrame] = {}
    if prepared.probe is not None and prepared.grads_start is not None:
        x_probe, y_probe = prepared.probe
        grads_end = gradient_norms(model, x_probe, y_probe, loss_function(model))
        metrics.update(gradient_summary(prepared.grads_start, suffix="_start"))
        metrics.update(gradient_summary(grads_end))
        metrics.update(dead_unit_fractions(model, splits.probe("val", len(x_probe))[0]))
        tables["gradient_norms"] = prepared.grads_start.rename(columns={"norm": "start"}).assign(
            end=grads_end["norm"]
        )
    metrics.update(
        evaluate_test_set(
            model,
            splits.test_batches(),
            task,
            mc_samples=int(cfg.evaluate.mc_dropout_samples),
            bins=int(cfg.evaluate.ece_bins),
        )
    )
    values = objective_values(task, metrics, rows)
    return FitResult(
        value=values[0],
        history=pd.DataFrame(rows),
        metrics=metrics,
        tables=tables,
        model=model,
        values=values,
    )


def _chance_detector(diag: DictConfig, num_classes: int) -> ChanceDetector:
    return ChanceDetector(
        num_classes,
        epochs=int(diag.chance_epochs),
        accuracy_margin=float(diag.chance_accuracy_margin),
        loss_margin=float(diag.chance_loss_margin),
    )
