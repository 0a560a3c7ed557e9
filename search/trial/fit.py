"""Train one configuration: seed, build, compile, fit with callbacks, evaluate.

Used by the study's objective (one call per trial) and by ``search.train`` (a re-train).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import pandas as pd
from omegaconf import DictConfig
from optuna.distributions import CategoricalDistribution

from search.cli.errors import HarnessError, first_line
from search.config.compose import as_dict, resolved_copy
from search.config.space import ParamSpec
from search.data.splits import Splits
from search.models import build_model, make_optimizer
from search.trial.callbacks import EpochRecorder
from search.trial.diagnostics import (
    ChanceDetector,
    dead_unit_fractions,
    gradient_norms,
    gradient_summary,
)
from search.trial.evaluation import evaluate_test_set
from search.trial.history import summarize_epochs

__all__ = ["FitResult", "build_compiled", "fit_config", "preflight"]


@dataclass
class FitResult:
    """What a fit produced; ``history`` has one row per epoch."""

    history: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def best_val_accuracy(self) -> float:
        return self.metrics["best_val_accuracy"]


def build_compiled(cfg: DictConfig, splits: Splits) -> keras.Model:
    """The model a config describes, compiled with its optimizer."""
    model_args = as_dict(cfg.model)
    builder = str(model_args.pop("builder"))
    if model_args.get("standardize"):
        model_args["input_stats"] = splits.feature_stats
    model = build_model(builder, splits.input_shape, splits.num_classes, **model_args)
    opt = cfg.optimizer
    model.compile(
        optimizer=make_optimizer(
            str(opt.name),
            float(opt.learning_rate),
            momentum=float(opt.momentum),
            nesterov=bool(opt.nesterov),
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def preflight(cfg: DictConfig, splits: Splits, specs: Sequence[ParamSpec] = ()) -> None:
    """Build the study's base model once, so a bad model config (an unknown option, ImageNet
    weights that cannot be downloaded) fails before any study or run exists; and each
    optimizer the config or its space names."""
    probe = resolved_copy(cfg)
    if str(probe.optimizer.learning_rate) == "auto":
        probe.optimizer.learning_rate = probe.lr_find.min_lr
    for name in _optimizer_names(probe, specs):
        try:
            make_optimizer(name, float(probe.optimizer.learning_rate))
        except ValueError as exc:
            where = "optimizer.name" if name == probe.optimizer.name else "space.optimizer.name"
            raise HarnessError(f"{where}: {first_line(exc)}") from None
    try:
        build_compiled(probe, splits)
    except (ValueError, TypeError) as exc:
        raise HarnessError(f"model: {first_line(exc, 300)}") from None
    finally:
        keras.backend.clear_session()


def _optimizer_names(cfg: DictConfig, specs: Sequence[ParamSpec]) -> list[str]:
    names = [str(cfg.optimizer.name)]
    for spec in specs:
        if spec.name == "optimizer.name" and isinstance(spec.distribution, CategoricalDistribution):
            names += [str(choice) for choice in spec.distribution.choices]
    return names


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
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(cfg.seed))
    model = build_compiled(cfg, splits)
    monitor = str(cfg.metric)
    diag = cfg.diagnostics
    probe = int(diag.probe_examples)
    early = keras.callbacks.EarlyStopping(
        monitor=monitor, mode="max", patience=int(cfg.train.patience), restore_best_weights=True
    )
    guards: list[keras.callbacks.Callback] = [recorder]
    if diag.enabled:
        guards.append(_chance_detector(diag, splits.num_classes))
        grads_start = gradient_norms(model, splits.x_train[:probe], splits.y_train[:probe])
    model.fit(
        splits.x_train,
        splits.y_train,
        validation_data=(splits.x_val, splits.y_val),
        epochs=int(cfg.train.epochs),
        batch_size=int(cfg.train.batch_size),
        callbacks=[*guards, early, *callbacks],
        verbose=int(cfg.train.verbose),
    )
    metrics = summarize_epochs(recorder.rows, monitor)
    tables: dict[str, pd.DataFrame] = {}
    if diag.enabled:
        grads_end = gradient_norms(model, splits.x_train[:probe], splits.y_train[:probe])
        metrics.update(gradient_summary(grads_start, suffix="_start"))
        metrics.update(gradient_summary(grads_end))
        metrics.update(dead_unit_fractions(model, splits.x_val[:probe]))
        tables["gradient_norms"] = grads_start.rename(columns={"norm": "start"}).assign(
            end=grads_end["norm"]
        )
    metrics.update(
        evaluate_test_set(
            model,
            splits.x_test,
            splits.y_test,
            mc_samples=int(cfg.evaluate.mc_dropout_samples),
            bins=int(cfg.evaluate.ece_bins),
        )
    )
    return FitResult(history=pd.DataFrame(recorder.rows), metrics=metrics, tables=tables)


def _chance_detector(diag: DictConfig, num_classes: int) -> ChanceDetector:
    return ChanceDetector(
        num_classes,
        epochs=int(diag.chance_epochs),
        accuracy_margin=float(diag.chance_accuracy_margin),
        loss_margin=float(diag.chance_loss_margin),
    )
