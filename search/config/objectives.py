"""What a study optimizes: one objective (``metric=val_accuracy direction=maximize``) or
several (``metric=[val_accuracy,seconds_per_epoch] direction=[maximize,minimize]``: an
Optuna multi-objective study, whose answer is a Pareto front).

The first objective is a validation figure (``val_<name>``): it drives early stopping, the
best epoch (whose weights are kept), the diagnostics and the registry's ``champion``. The
others are validation figures at that best epoch, or costs the harness measures:
``seconds_per_epoch`` (the median epoch after the first, which also traces the graphs) and
``params`` (the model's parameter count), both better when lower.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from omegaconf import ListConfig

from search.cli.errors import HarnessError

__all__ = ["COSTS", "Objective", "objectives_of", "values_text"]

COSTS = ("seconds_per_epoch", "params")  # measured by the harness; lower is better
# figures whose better side is known: a direction against it is a mistake
_LOWER_IS_BETTER = (
    "loss",
    "mae",
    "mse",
    "mape",
    "msle",
    "rmse",
    "root_mean_squared_error",
    "mean_absolute_error",
    "mean_squared_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "log_cosh",
    "logcosh",
    "poisson",
    "kl_divergence",
    "hinge",
    "squared_hinge",
)
_HIGHER_IS_BETTER = ("accuracy", "auc", "precision", "recall", "f1_score", "r2_score")


@dataclass(frozen=True)
class Objective:
    """One figure a study optimizes and how it gets better."""

    name: str
    maximize: bool

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.maximize else "minimize"

    @property
    def worst(self) -> float:
        """A stand-in for a figure that is no number (diverged): 0 for a maximized figure
        (accuracy), a huge value for a minimized one (a loss); finite, so that every
        storage and plot takes it."""
        return 0.0 if self.maximize else 1e12


def objectives_of(metric: object, direction: object) -> tuple[Objective, ...]:
    """The objectives ``metric`` and ``direction`` name (a name each, or lists of the same
    length), checked in one line each: names, directions, a validation figure first, a
    cost maximized."""
    names = _listed("metric", metric)
    directions = _listed("direction", direction)
    if len(names) != len(directions):
        guess = ",".join(_better(name) or "maximize" for name in names)
        raise HarnessError(
            f"metric names {_count(len(names))} but direction {_count(len(directions))}; give "
            f"one direction per metric: direction=[{guess}] (minimize for losses, errors and "
            "costs)"
        )
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise HarnessError(f"metric: {twice} is listed twice; list each objective once")
    for word in directions:
        if word not in ("maximize", "minimize"):
            raise HarnessError(f"direction must be maximize or minimize, got {word}")
    first = names[0]
    if first in COSTS:
        raise HarnessError(
            f"metric: the first objective drives early stopping and the best epoch, so it "
            f"must be a validation figure (val_<name>), not {first}: "
            f"metric=[val_accuracy,{first}] direction=[maximize,minimize]"
        )
    several = len(names) > 1
    for name, word in zip(names, directions, strict=True):
        _check_name(name, several and name != first)
        better = _better(name)
        if better and better != word:
            fixed = [_better(n) or d for n, d in zip(names, directions, strict=True)]
            fix = f"[{','.join(fixed)}]" if several else better
            side = "lower" if better == "minimize" else "higher"
            other = "accuracy-like figures" if side == "lower" else "losses, errors and costs"
            raise HarnessError(
                f"metric={name} is better when {side}: add direction={fix} ({word} is for {other})"
            )
    return tuple(Objective(n, d == "maximize") for n, d in zip(names, directions, strict=True))


def _check_name(name: str, cost_ok: bool) -> None:
    """A validation figure (``val_<name>``), or a cost where one may stand."""
    if name.startswith("val_") and name != "val_":
        return
    if cost_ok and name in COSTS:
        return
    if not cost_ok:
        raise HarnessError(
            f"metric={name} is not a validation figure; Keras logs each metric on the "
            f"validation set as val_<name>: use metric=val_{name.removeprefix('val_') or 'loss'}"
        )
    close = difflib.get_close_matches(name, COSTS, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise HarnessError(
        f"metric {name} is neither a validation figure (val_<name>) nor a cost the harness "
        f"measures ({', '.join(COSTS)}){hint}"
    )


def _better(name: str) -> str:
    """``maximize`` or ``minimize`` where the figure's better side is known, else ""."""
    if name in COSTS:
        return "minimize"
    bare = name.removeprefix("val_")
    if bare in _LOWER_IS_BETTER or bare.endswith(("_loss", "crossentropy", "_error")):
        return "minimize"
    if bare in _HIGHER_IS_BETTER or bare.endswith("_accuracy"):
        return "maximize"
    return ""


def _listed(key: str, value: object) -> list[str]:
    items = list(value) if isinstance(value, ListConfig | list | tuple) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        example = "val_accuracy" if key == "metric" else "maximize"
        raise HarnessError(
            f"{key} must be a name or a list of names ({key}={example} or "
            f"{key}=[{example},...]), got {value!r}"
        )
    return [str(item) for item in items]


def _count(n: int) -> str:
    return f"{n} objective{'s' if n != 1 else ''}"


def values_text(values: Sequence[float]) -> str:
    """``0.9123, 0.0431``: a trial's values as the progress line and summary print them."""
    return ", ".join(_number(float(v)) for v in values)


def _number(value: float) -> str:
    """``0.9123``; a count as a whole number (``205434``); large figures in 4 digits."""
    if value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.4g}" if abs(value) >= 1e4 else f"{value:.4f}"
