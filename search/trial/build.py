"""The model a config describes, compiled: the builder ``model.builder`` names (a
registered name or ``module:function``, ``search.models.registry``), the config's
optimizer, and the task's loss and metrics (``search.config.task``).

A builder that compiles its own model keeps its loss and metrics; the optimizer is always
the config's (the search space sweeps it). ``preflight`` builds the study's model once, on
a few validation examples, so a bad builder, loss, metric or label fails in one line
before any study or run exists, and checks that Keras can save and load it back (or no
models are kept).
"""

from __future__ import annotations

import difflib
import inspect
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from omegaconf import DictConfig
from optuna.distributions import CategoricalDistribution

from search.cli.errors import HarnessError, first_line
from search.config.compose import as_dict, resolved_copy
from search.config.space import ParamSpec
from search.config.task import Task, task_of
from search.data.splits import Splits
from search.models import BuilderError, build_model, make_optimizer, resolve_builder

__all__ = ["build_compiled", "loss_function", "preflight"]

log = logging.getLogger("search")


def build_compiled(cfg: DictConfig, splits: Splits) -> keras.Model:
    """The model a config describes, compiled with its optimizer, loss and metrics."""
    task = task_of(cfg)
    model_args = as_dict(cfg.model)
    builder = str(model_args.pop("builder"))
    if model_args.get("standardize"):
        model_args["input_stats"] = splits.feature_stats
    if splits.num_classes is None and _takes(builder, "output_bias"):
        model_args.setdefault("output_bias", float(np.mean(splits.probe("train", 100_000)[1])))
    model = build_model(builder, splits.input_shape, splits.num_classes, **model_args)
    loss: Any = task.loss
    metrics: list[Any] = list(task.metrics)
    if model.compiled:  # the builder's own loss and metrics (and ours it lacks)
        given = getattr(model, "_compile_config", None)
        theirs = dict(getattr(given, "config", {}) or {})
        loss = theirs.get("loss") or loss
        mine = [m for m in metrics if m not in list(theirs.get("metrics") or [])]
        metrics = [*(theirs.get("metrics") or []), *mine]
    opt = cfg.optimizer
    model.compile(
        optimizer=make_optimizer(
            str(opt.name),
            float(opt.learning_rate),
            momentum=float(opt.momentum),
            nesterov=bool(opt.nesterov),
        ),
        loss=loss,
        metrics=metrics,
        steps_per_execution=int(cfg.train.steps_per_execution),
        jit_compile=bool(cfg.train.jit_compile),
    )
    return model


def _takes(builder: str, name: str) -> bool:
    """Whether the builder has an argument ``name`` (a regression's start: the dense one)."""
    try:
        return name in inspect.signature(resolve_builder(builder)).parameters
    except (BuilderError, TypeError, ValueError):
        return False


def loss_function(model: keras.Model) -> Any:
    """The compiled loss as a callable ``(y_true, y_pred)`` (for the gradient probes)."""
    return keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss


def preflight(cfg: DictConfig, splits: Splits, specs: Sequence[ParamSpec] = ()) -> None:
    """Build and evaluate the study's base model once on a few validation examples, so a
    bad model config (an unknown option, a builder that raises or returns no model, ImageNet
    weights that cannot be downloaded), a loss or metric Keras does not know, or labels the
    model cannot take fail before any study or run exists; and each optimizer the config
    or its space names."""
    probe = resolved_copy(cfg)
    if str(probe.optimizer.learning_rate) == "auto":
        probe.optimizer.learning_rate = probe.lr_find.min_lr
    for name in _optimizer_names(probe, specs):
        try:
            make_optimizer(name, float(probe.optimizer.learning_rate))
        except ValueError as exc:
            where = "optimizer.name" if name == probe.optimizer.name else "space.optimizer.name"
            raise HarnessError(f"{where}: {first_line(exc)}") from None
    task = task_of(probe)
    _check_names(task)
    try:
        model = build_compiled(probe, splits)
    except BuilderError as exc:
        raise HarnessError(first_line(exc, 400)) from None
    except (ValueError, TypeError) as exc:
        raise HarnessError(f"model: {first_line(exc, 300)}") from None
    try:
        _check_task(model, task)
        _check_logged(model, task, splits)
        if str(cfg.tracking.log_models) != "none":
            _check_savable(model, cfg)
    finally:
        keras.backend.clear_session()


def _check_savable(model: keras.Model, cfg: DictConfig) -> None:
    """Models are kept only when Keras can save one and load it back (safe mode): a kept
    model that cannot be loaded is no use. Otherwise said once, and none are kept."""
    with tempfile.TemporaryDirectory(prefix="search-savable-") as tmp:
        path = Path(tmp) / "model.keras"
        try:
            model.save(path)
            with warnings.catch_warnings():  # its optimizer is not built yet: Keras says so
                warnings.simplefilter("ignore")
                keras.saving.load_model(path, safe_mode=True)
        except Exception as exc:  # an unregistered layer, a Lambda (unsafe), no get_config
            log.warning(
                f"note: Keras cannot save this model and load it back ({first_line(exc, 200)}); "
                "no models are kept in MLflow: give each custom layer get_config() and "
                "@keras.saving.register_keras_serializable(), or set tracking.log_models=none"
            )
            cfg.tracking.log_models = "none"


def _name(thing: Any) -> str:
    """A loss's or metric's name, given as a string or an object."""
    if isinstance(thing, str):
        return thing
    return str(getattr(thing, "name", None) or getattr(thing, "__name__", type(thing).__name__))


def _compiled(model: keras.Model) -> tuple[str, list[str]]:
    """The loss and the metrics the model was compiled with, by name."""
    given = dict(getattr(getattr(model, "_compile_config", None), "config", {}) or {})
    return _name(given.get("loss")), [_name(m) for m in given.get("metrics") or []]


def _check_task(model: keras.Model, task: Task) -> None:
    """A builder that compiled its own loss: a classification loss where the config says a
    regression, or the other way round, would mix labels and figures."""
    loss, _ = _compiled(model)
    try:
        keras.losses.get(loss)
    except (ValueError, TypeError):
        return  # a loss of the user's own: its kind is theirs to know
    theirs = "crossentropy" in loss
    if theirs != task.classification:
        kind = "a classification" if theirs else "a regression"
        raise HarnessError(
            f"the builder compiles loss={loss} ({kind}) but train.loss={task.loss}; set "
            f"train.loss={loss} (and metric, direction to match) or leave compiling to the harness"
        )


def _check_names(task: Task) -> None:
    try:
        keras.losses.get(task.loss)
    except (ValueError, TypeError):
        raise HarnessError(
            f"train.loss: {task.loss!r} is not a Keras loss; use one like "
            "sparse_categorical_crossentropy, mse, mae or huber"
        ) from None
    objectives = {objective.name for objective in task.objectives} | {task.monitor}
    for name in task.metrics:
        try:
            keras.metrics.get(name)
        except (ValueError, TypeError):
            where = "metric" if f"val_{name}" in objectives else "train.metrics"
            known = ["accuracy", "auc", "precision", "recall", "mae", "mse", "rmse"] + [
                n for n in dir(keras.metrics) if n.islower() and not n.startswith("_")
            ]
            close = difflib.get_close_matches(name, known, n=1)
            fix = "use one like accuracy, auc, mae, mse or root_mean_squared_error"
            raise HarnessError(
                f"{where}: {name!r} is not a Keras metric; "
                + (f"did you mean {close[0]}?" if close else fix)
            ) from None


def _check_logged(model: keras.Model, task: Task, splits: Splits) -> None:
    """One evaluation on a few validation examples: the labels fit the model's output and
    ``metric`` is among what Keras logs."""
    x, y = splits.probe("val", 8)
    try:
        logged = model.evaluate(x, y, verbose=0, return_dict=True)
    except Exception as exc:  # shapes, dtypes, labels out of range: Keras says which
        loss, metrics = _compiled(model)
        raise HarnessError(
            f"the model cannot be trained on dataset {splits.name} with loss "
            f"{loss} and metrics {', '.join(metrics) or 'none'} ({_reason(exc)}); "
            f"check the builder's output (shape {tuple(model.output_shape)}) against the "
            f"labels (shape {y.shape[1:]}, {y.dtype}) and that each metric fits them"
        ) from None
    wanted = [o.name for o in task.objectives if o.name.startswith("val_")] or [task.monitor]
    for monitor in wanted:
        name = monitor.removeprefix("val_")
        if name not in logged:
            raise HarnessError(
                f"metric={monitor}: the model logs {', '.join(f'val_{k}' for k in logged)}; "
                f"add {name} to train.metrics or pick one of those"
            )
    if not all(np.isfinite(float(v)) for v in logged.values()):
        bad = next(k for k, v in logged.items() if not np.isfinite(float(v)))
        raise HarnessError(
            f"the untrained model's {bad} on dataset {splits.name} is not a number: check the "
            "data for NaN or inf values"
        )


def _reason(exc: Exception) -> str:
    """What went wrong, in a line: a TensorFlow graph error's last line of its own (the
    lines before it are the Python stack of the graph's node)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    own = [line for line in lines if not line.startswith(("File ", "[[", "Detected at node"))]
    text = own[-1] if own else type(exc).__name__
    return text.split(" [Op:")[0][:300]


def _optimizer_names(cfg: DictConfig, specs: Sequence[ParamSpec]) -> list[str]:
    names = [str(cfg.optimizer.name)]
    for spec in specs:
        if spec.name == "optimizer.name" and isinstance(spec.distribution, CategoricalDistribution):
            names += [str(choice) for choice in spec.distribution.choices]
    return names
