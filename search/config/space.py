"""The search space: YAML declaration -> Optuna distributions -> sampled config.

A study file declares its space under ``space:``. Each parameter is addressed by the
dotted config key it sets, either written flat (``optimizer.learning_rate: {...}``) or
nested like the config itself (``optimizer: {learning_rate: {...}}``). A parameter is a
mapping with ``type``::

    {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
    {type: float, low: 0.0, high: 0.5, step: 0.1}
    {type: int, low: 10, high: 20, step: 2}
    {type: categorical, choices: [false, true]}
    {type: float, low: 0.5, high: 0.999, when: {optimizer.name: sgd}}

A parameter set to ``null`` is not searched (handy over a space a study inherits, or on
the command line: ``space.model.dropout_rate=null``). ``when`` makes a parameter
conditional: it is sampled only when every named key has (one of) the given value(s),
looking at parameters sampled before it, then at the config.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from search.cli.errors import SpaceError
from search.config.steps import on_step

__all__ = [
    "ParamSpec",
    "apply_params",
    "grid_search_space",
    "parse_space",
    "sample_params",
    "validate_space_keys",
]

_MISSING = object()
_NUMERIC_FIELDS = {"type", "low", "high", "log", "step", "when"}
_CATEGORICAL_FIELDS = {"type", "choices", "when"}


@dataclass(frozen=True)
class ParamSpec:
    """One searchable config key: its Optuna distribution and its condition."""

    name: str
    distribution: BaseDistribution
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def is_active(self, lookup: Callable[[str], Any]) -> bool:
        """True when every ``when`` key currently has one of its allowed values."""
        return all(lookup(key) in allowed for key, allowed in self.when.items())


def parse_space(space: Mapping[str, Any] | DictConfig | None) -> list[ParamSpec]:
    """Turn a declared space into parameter specs, in declaration order (pure)."""
    if space is None:
        return []
    if isinstance(space, DictConfig):
        space = OmegaConf.to_container(space, resolve=True)  # type: ignore[assignment]
    if not isinstance(space, Mapping):
        raise SpaceError(f"space must be a mapping of config keys, got {type(space).__name__}")
    return [_parse_param(name, spec) for name, spec in _flatten(space, prefix="")]


def _flatten(tree: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if value is None:  # `key: null` (e.g. over an inherited space): not searched
            continue
        if isinstance(value, Mapping) and "type" not in value:
            out.extend(_flatten(value, prefix=f"{name}."))
        else:
            out.append((name, value))
    return out


def _parse_param(name: str, spec: Any) -> ParamSpec:
    if not isinstance(spec, Mapping):
        raise SpaceError(
            f"space.{name}: expected a mapping like "
            f"{{type: float, low: 0.1, high: 1}}, got {spec!r}"
        )
    kind = spec.get("type")
    if kind in ("float", "int"):
        distribution = _numeric(name, kind, spec)
    elif kind == "categorical":
        distribution = _categorical(name, spec)
    else:
        raise SpaceError(f"space.{name}: type must be float, int or categorical, got {kind!r}")
    return ParamSpec(name=name, distribution=distribution, when=_condition(name, spec))


def _numeric(name: str, kind: str, spec: Mapping[str, Any]) -> BaseDistribution:
    _check_fields(name, spec, _NUMERIC_FIELDS)
    low, high, step, log = spec.get("low"), spec.get("high"), spec.get("step"), spec.get("log")
    if not _is_number(low) or not _is_number(high):
        raise SpaceError(
            f"space.{name}: {kind} needs numeric low and high, got {low!r}, {high!r}"
            " (write exponents with a dot: 1.0e-3)"
        )
    if not math.isfinite(low) or not math.isfinite(high):
        raise SpaceError(
            f"space.{name}: low and high must be finite numbers, got {low!r}, {high!r}"
        )
    if step is not None and (not _is_number(step) or not math.isfinite(step) or step <= 0):
        raise SpaceError(f"space.{name}: step must be a positive number, got {step!r}")
    if log is not None and not isinstance(log, bool):
        raise SpaceError(f"space.{name}: log must be true or false, got {log!r}")
    return _numeric_distribution(name, kind, low, high, bool(log), step)


def _numeric_distribution(
    name: str, kind: str, low: float, high: float, log: bool, step: float | None
) -> BaseDistribution:
    if low > high:
        raise SpaceError(f"space.{name}: low ({low}) > high ({high}); swap them")
    if log and low <= 0:
        raise SpaceError(f"space.{name}: log scale needs low > 0, got low={low}")
    if log and step is not None:
        raise SpaceError(f"space.{name}: use either log or step, not both")
    if kind == "int":
        if not all(float(v).is_integer() for v in (low, high, step or 1)):
            raise SpaceError(f"space.{name}: int needs whole-number low/high/step")
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    if step is not None and not _divides(step, high - low):
        raise SpaceError(
            f"space.{name}: step {step} does not divide high - low ({high} - {low}); "
            "change high or step so that the last step lands on high"
        )
    return FloatDistribution(low, high, log=log, step=step)


def _divides(step: float, span: float) -> bool:
    count = span / step
    return abs(count - round(count)) < 1e-6


def _categorical(name: str, spec: Mapping[str, Any]) -> BaseDistribution:
    _check_fields(name, spec, _CATEGORICAL_FIELDS)
    choices = spec.get("choices")
    if not isinstance(choices, list | tuple) or len(choices) == 0:
        raise SpaceError(f"space.{name}: categorical needs a non-empty list of choices")
    kinds = {_kind(name, choice) for choice in choices} - {"null"}
    if len(kinds) > 1:
        raise SpaceError(
            f"space.{name}: choices mix {' and '.join(sorted(kinds))} values ({choices!r}); "
            "use one type (null may join any), e.g. quote the strings"
        )
    repeated = [c for i, c in enumerate(choices) if c in choices[:i]]
    if repeated:
        raise SpaceError(f"space.{name}: choice {repeated[0]!r} is listed twice; list it once")
    return CategoricalDistribution(tuple(choices))


def _kind(name: str, choice: Any) -> str:
    """One choice's type family: bool, number (int and float together), string or null."""
    if choice is None:
        return "null"
    if isinstance(choice, bool):
        return "bool"
    if isinstance(choice, str):
        return "string"
    if isinstance(choice, int | float):
        if not math.isfinite(choice):
            raise SpaceError(f"space.{name}: choices must be finite numbers, got {choice!r}")
        return "number"
    raise SpaceError(f"space.{name}: choices must be scalars, got {choice!r}")


def _condition(name: str, spec: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    when = spec.get("when") or {}
    if not isinstance(when, Mapping):
        raise SpaceError(f"space.{name}: when must map config keys to values, got {when!r}")
    return {
        str(key): tuple(value) if isinstance(value, list | tuple) else (value,)
        for key, value in when.items()
    }


def _check_fields(name: str, spec: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise SpaceError(
            f"space.{name}: unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_space_keys(specs: list[ParamSpec], cfg: DictConfig) -> None:
    """Every parameter and condition must address a key that exists in the config, and a
    parameter's values must be of the key's kind: a true/false key takes true and false,
    a text key (a name) no numeric range."""
    for spec in specs:
        for key in (spec.name, *spec.when):
            if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
                raise SpaceError(
                    f"space.{spec.name}: config key '{key}' does not exist; "
                    "check the spelling against `--cfg job`"
                )
        _check_kind(spec, OmegaConf.select(cfg, spec.name))


def _check_kind(spec: ParamSpec, current: Any) -> None:
    dist = spec.distribution
    if isinstance(current, bool):
        values = dist.choices if isinstance(dist, CategoricalDistribution) else ("a number",)
        if not all(isinstance(v, bool) for v in values):
            raise SpaceError(
                f"space.{spec.name}: {spec.name} is true or false (now {current}); "
                f"search it as {{type: categorical, choices: [false, true]}}"
            )
    elif isinstance(current, str) and not isinstance(dist, CategoricalDistribution):
        raise SpaceError(
            f"space.{spec.name}: {spec.name} is a name (now '{current}'), not a number; "
            "search it as {type: categorical, choices: [...]}"
        )


def sample_params(
    trial: optuna.trial.BaseTrial, specs: list[ParamSpec], cfg: DictConfig
) -> dict[str, Any]:
    """Ask the trial for every active parameter, in order; conditions see earlier samples."""
    sampled: dict[str, Any] = {}

    def lookup(key: str) -> Any:
        if key in sampled:
            return sampled[key]
        return OmegaConf.select(cfg, key, default=_MISSING)

    for spec in specs:
        if spec.is_active(lookup):
            sampled[spec.name] = _suggest(trial, spec.name, spec.distribution)
    return sampled


def _suggest(trial: optuna.trial.BaseTrial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        value = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
        return on_step(dist, value)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"unsupported distribution {dist!r}")


def apply_params(cfg: DictConfig, params: Mapping[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with each dotted key set to its sampled value."""
    out = cfg.copy()
    for key, value in params.items():
        OmegaConf.update(out, key, value, merge=False)
    return out


def grid_search_space(specs: list[ParamSpec]) -> dict[str, list[Any]]:
    """The value lists GridSampler needs; floats and ints must have a step."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        dist = spec.distribution
        if isinstance(dist, CategoricalDistribution):
            grid[spec.name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[spec.name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            grid[spec.name] = [on_step(dist, v) for v in np.linspace(dist.low, dist.high, count)]
        else:
            raise SpaceError(
                f"space.{spec.name}: sampler=grid needs categorical or stepped params; "
                "add a step or use another sampler"
            )
    return grid
