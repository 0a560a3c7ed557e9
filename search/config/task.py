"""What a study trains for and measures: its loss, the metrics logged per epoch, what it
optimizes (``metric``, in ``direction``: one objective or several, ``search.config.objectives``)
and whether it is a classification.

A crossentropy loss (``train.loss``, default ``sparse_categorical_crossentropy``) is a
classification on integer labels; any other Keras loss (``mse``, ``mae``, ``huber``, ...)
a regression on float targets. ``train.metrics: null`` logs ``accuracy`` for a
classification and nothing extra for a regression; the metric that ``metric`` names
(``val_mae``: ``mae``) is always logged. Early stopping, the best epoch, pruning, the
detectors, the summary, export and report all read ``Task``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig

from search.cli.errors import HarnessError
from search.config.objectives import Objective, objectives_of

__all__ = ["CLASSIFICATION_LOSSES", "Task", "task_of"]

CLASSIFICATION_LOSSES = (
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "binary_focal_crossentropy",
)
_ONE_HOT = ("categorical_crossentropy", "categorical_focal_crossentropy")


@dataclass(frozen=True)
class Task:
    """The loss, the compiled metrics, the monitored validation figure (the first
    objective) and its direction, and every objective of the study."""

    loss: str
    metrics: tuple[str, ...]
    monitor: str
    maximize: bool
    objectives: tuple[Objective, ...] = ()

    @property
    def multi(self) -> bool:
        """Several objectives: an Optuna multi-objective study (no pruning, a Pareto front)."""
        return len(self.objectives) > 1

    @property
    def classification(self) -> bool:
        return self.loss in CLASSIFICATION_LOSSES

    @property
    def mode(self) -> str:
        """Keras' name for the direction (``EarlyStopping(mode=...)``)."""
        return "max" if self.maximize else "min"

    @property
    def worst(self) -> float:
        """The first objective's stand-in for a figure that is no number (``Objective.worst``)."""
        return Objective(self.monitor, self.maximize).worst

    @property
    def best_key(self) -> str:
        """The final metric that holds the best epoch's value: ``best_val_accuracy``."""
        return f"best_{self.monitor}"

    def chance_off(self) -> str:
        """Why chance-level detection means nothing for this task, or "" when it is on."""
        if not self.classification:
            return f"train.loss={self.loss} is a regression: there is no chance level"
        if self.loss != "sparse_categorical_crossentropy" or "accuracy" not in self.metrics:
            return "it reads accuracy and sparse categorical crossentropy, which are not logged"
        return ""


def task_of(cfg: DictConfig) -> Task:
    """The ``Task`` of a composed config, checked: one-line errors for a loss that needs
    one-hot labels, a metric that is not a validation figure or a direction against it."""
    loss = str(cfg.train.loss)
    close = difflib.get_close_matches(loss, [*CLASSIFICATION_LOSSES, *_ONE_HOT], n=1, cutoff=0.8)
    if close and loss != close[0]:
        raise HarnessError(f"train.loss: {loss!r} is not a Keras loss; did you mean {close[0]}?")
    if loss in _ONE_HOT:
        raise HarnessError(
            f"train.loss={loss} needs one-hot labels; the harness's labels are class numbers: "
            f"use train.loss=sparse_{loss}"
        )
    objectives = objectives_of(cfg.metric, cfg.direction)
    monitor, maximize = objectives[0].name, objectives[0].maximize
    metrics = list(_listed(cfg.train.metrics, classification=loss in CLASSIFICATION_LOSSES))
    for objective in objectives:
        also = objective.name.removeprefix("val_")
        if objective.name.startswith("val_") and also != "loss" and also not in metrics:
            metrics.append(also)
    accuracy = next((o.name for o in objectives if o.name.endswith("accuracy")), "")
    if loss not in CLASSIFICATION_LOSSES and accuracy:
        raise HarnessError(
            f"metric={accuracy}: accuracy means nothing for a regression (train.loss={loss}); "
            "use metric=val_mae direction=minimize (or val_loss, val_mse)"
        )
    return Task(
        loss=loss, metrics=tuple(metrics), monitor=monitor, maximize=maximize, objectives=objectives
    )


def _listed(value: object, classification: bool) -> tuple[str, ...]:
    if value is None:
        return ("accuracy",) if classification else ()
    items = list(value) if isinstance(value, ListConfig | list | tuple) else [value]
    if not all(isinstance(item, str) and item for item in items):
        raise HarnessError(
            f"train.metrics must be a list of Keras metric names (like [accuracy, auc]) or "
            f"null, got {value}"
        )
    if not classification and "accuracy" in items:
        raise HarnessError(
            "train.metrics: accuracy means nothing for a regression (a train.loss that is "
            "not a crossentropy); use mae, mse or root_mean_squared_error"
        )
    return tuple(dict.fromkeys(str(item) for item in items))
