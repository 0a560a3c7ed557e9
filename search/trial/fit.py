"""Train one configuration: seed, build, compile, fit with callbacks, evaluate.

Used by the study's objective (one call per trial) and by ``search.train`` (a re-train).
The task (``search.config.task``) decides what early stopping watches and in which
direction, which epoch is best and whether chance-level detection applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import pandas as pd
from omegaconf import DictConfig

from search.config.objectives import COSTS
from search.config.task import Task, task_of
from search.data.splits import Splits
from search.trial.build import build_compiled, loss_function
from search.trial.callbacks import EpochRecorder
from search.trial.diagnostics import (
    ChanceDetector,
    dead_unit_fractions,
    gradient_norms,
    gradient_summary,
)
from search.trial.evaluation import evaluate_test_set
from search.trial.history import summarize_epochs
from search.trial.traces import TRACED, start_fresh

__all__ = ["FitResult", "fit_config", "objective_values"]


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


def fit_config(
    cfg: DictConfig,
    splits: Splits,
    recorder: EpochRecorder,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> FitResult:
    """Seed, build and fit; early stopping restores the best weights; test set evaluated last.

    Raises ``TrialDiverged`` on a NaN/inf loss and ``StuckAtChance`` when the validation
    figures sit at chance level. Exceptions raised by ``callbacks`` (a pruning callback)
    propagate; ``recorder.rows`` then holds the epochs done.
    """
    start_fresh(int(cfg.seed), keep_caches=int(cfg.train.traced_models) > 0 and len(TRACED) > 0)
    task = task_of(cfg)
    model = build_compiled(cfg, splits)
    reused = TRACED.reused
    model = TRACED.take(model, int(cfg.train.traced_models))  # one of this structure, if kept
    diag = cfg.diagnostics
    early = keras.callbacks.EarlyStopping(
        monitor=task.monitor,
        mode=task.mode,
        patience=int(cfg.train.patience),
        restore_best_weights=True,
    )
    guards: list[keras.callbacks.Callback] = [recorder]
    if diag.enabled:
        if not task.chance_off() and splits.num_classes:
            guards.append(_chance_detector(diag, splits.num_classes))
        x_probe, y_probe = splits.probe("train", int(diag.probe_examples))
        grads_start = gradient_norms(model, x_probe, y_probe, loss_function(model))
    model.fit(
        **splits.fit_inputs(int(cfg.train.batch_size)),
        epochs=int(cfg.train.epochs),
        callbacks=[*guards, early, *callbacks],
        verbose=int(cfg.train.verbose),
    )
    metrics = summarize_epochs(recorder.rows, task.monitor, maximize=task.maximize)
    metrics["params"] = float(model.count_params())
    metrics["reused_traces"] = float(TRACED.reused > reused)  # trained on graphs traced before
    tables: dict[str, pd.DataFrame] = {}
    if diag.enabled:
        grads_end = gradient_norms(model, x_probe, y_probe, loss_function(model))
        metrics.update(gradient_summary(grads_start, suffix="_start"))
        metrics.update(gradient_summary(grads_end))
        metrics.update(dead_unit_fractions(model, splits.probe("val", len(x_probe))[0]))
        tables["gradient_norms"] = grads_start.rename(columns={"norm": "start"}).assign(
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
    values = objective_values(task, metrics, recorder.rows)
    return FitResult(
        value=values[0],
        history=pd.DataFrame(recorder.rows),
        metrics=metrics,
        tables=tables,
        model=model,
        values=values,
    )


def objective_values(
    task: Task, metrics: dict[str, float], rows: Sequence[dict[str, float]]
) -> tuple[float, ...]:
    """The trial's value on each objective: the first's best epoch, the other validation
    figures at that epoch (also put in ``metrics`` as ``<name>_at_best_epoch``), the
    costs as measured (``seconds_per_epoch``, ``params``)."""
    values = [metrics.get(task.best_key, math.nan)]
    best = int(metrics.get("best_epoch", 0))
    for objective in task.objectives[1:]:
        if objective.name in COSTS:
            values.append(metrics.get(objective.name, math.nan))
            continue
        value = rows[best].get(objective.name, math.nan) if best < len(rows) else math.nan
        metrics[f"{objective.name}_at_best_epoch"] = value
        values.append(value)
    return tuple(values)


def _chance_detector(diag: DictConfig, num_classes: int) -> ChanceDetector:
    return ChanceDetector(
        num_classes,
        epochs=int(diag.chance_epochs),
        accuracy_margin=float(diag.chance_accuracy_margin),
        loss_margin=float(diag.chance_loss_margin),
    )
