"""Warm starts (``warm_start=FILE_OR_STUDY``): known configurations enqueued before the
sampler takes over.

The source is an export (``best.yaml``: its values at this study's searched keys), a YAML
list of parameter sets (``- {optimizer.learning_rate: 0.01, model.batch_norm: true}``), or
the name of another study in the same storage (its top ``warm_start_k`` complete trials
whose parameters fit this study's space; of a multi-objective study, its Pareto front
first, each ranked by the first objective). A set from a file that names a key this study
does not search, or a value outside its space, is refused in one line before anything is
enqueued. Enqueued trials carry the user attr ``warm_start`` (the source) and run first;
a set the study already holds is not enqueued again, so the same command can be re-run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, ListConfig, OmegaConf

from search.cli.errors import HarnessError, first_line
from search.config.space import ParamSpec
from search.study.front import maximizes, pareto_numbers
from search.study.names import Attr

__all__ = ["enqueue_warm_start", "warm_sets"]


def warm_sets(
    source: str,
    storage: Callable[[], optuna.storages.BaseStorage],
    specs: Sequence[ParamSpec],
    k: int,
) -> list[dict[str, Any]]:
    """The parameter sets ``source`` names, each checked against ``specs``; ``storage``
    opens the study's storage (only for a study name: nothing is created)."""
    if not specs:
        raise HarnessError(f"warm_start={source}: this study searches nothing to start from")
    path = Path(source).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        return [_checked(s, specs, source) for s in _from_file(path, specs)]
    return _from_study(source, storage, specs, k)


def enqueue_warm_start(study: optuna.Study, sets: Sequence[dict[str, Any]], source: str) -> int:
    """Enqueue each set (not one the study already holds); how many were new."""
    before = len(study.get_trials(deepcopy=False))
    for params in sets:
        study.enqueue_trial(params, user_attrs={Attr.WARM_START: source}, skip_if_exists=True)
    return len(study.get_trials(deepcopy=False)) - before


def _from_file(path: Path, specs: Sequence[ParamSpec]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise HarnessError(
            f"warm_start: {path} {'is a folder' if path.is_dir() else 'does not exist'}; "
            "give an export (exports/<study>/best.yaml), a YAML list of parameter sets, "
            "or the name of a study in this storage"
        )
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax, a binary file
        raise HarnessError(f"warm_start: {path} is not YAML ({first_line(exc)})") from None
    if isinstance(loaded, ListConfig):
        plain = OmegaConf.to_container(loaded, resolve=True)
        assert isinstance(plain, list)
        for item in plain:
            if not isinstance(item, dict) or not item:
                raise HarnessError(
                    f"warm_start: {path} lists {item!r}; each item is a mapping of searched "
                    "keys to values ({optimizer.learning_rate: 0.01, model.batch_norm: true})"
                )
        return [_flat(item) for item in plain]
    if isinstance(loaded, DictConfig) and "source" in loaded:  # an export: the whole config
        return [_searched_values(loaded, specs)]
    if isinstance(loaded, DictConfig):
        return [_flat(dict(OmegaConf.to_container(loaded, resolve=True)))]  # type: ignore[arg-type]
    raise HarnessError(f"warm_start: {path} holds no parameter sets")


def _flat(item: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{model: {batch_norm: true}}`` and ``{model.batch_norm: true}`` alike."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _searched_values(config: DictConfig, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """An exported config's values at the keys this study searches (those active in it)."""

    def lookup(key: str) -> Any:
        return OmegaConf.select(config, key)

    return {spec.name: lookup(spec.name) for spec in specs if spec.is_active(lookup)}


def _checked(params: dict[str, Any], specs: Sequence[ParamSpec], source: str) -> dict[str, Any]:
    misfit = _misfit(params, specs, source)
    if misfit:
        raise HarnessError(f"warm_start: {misfit}")
    return params


def _misfit(params: Mapping[str, Any], specs: Sequence[ParamSpec], source: str) -> str:
    """Why ``params`` do not fit this study's space, or ""."""
    by_name = {spec.name: spec for spec in specs}
    for name, value in params.items():
        spec = by_name.get(name)
        if spec is None:
            return (
                f"{source} sets {name}, which this study does not search "
                f"(it searches {', '.join(by_name)})"
            )
        if not _fits(spec, value):
            return (
                f"{source} sets {name}={value!r}, outside space.{name} "
                f"({_described(spec.distribution)}); widen the space or drop that set"
            )
    return ""


def _fits(spec: ParamSpec, value: Any) -> bool:
    distribution = spec.distribution
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return any(
            value == c and isinstance(value, bool) == isinstance(c, bool)
            for c in distribution.choices
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _described(distribution: optuna.distributions.BaseDistribution) -> str:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return "one of " + ", ".join(repr(c) for c in distribution.choices)
    low, high = getattr(distribution, "low", "?"), getattr(distribution, "high", "?")
    step = getattr(distribution, "step", None)
    return f"{low}..{high}" + (f" step {step}" if step else "")


def _from_study(
    name: str,
    open_storage: Callable[[], optuna.storages.BaseStorage],
    specs: Sequence[ParamSpec],
    k: int,
) -> list[dict[str, Any]]:
    try:
        storage = open_storage()
        other = optuna.load_study(study_name=name, storage=storage)
    except (KeyError, HarnessError):
        names = ", ".join(_names(open_storage)) or "none"
        raise HarnessError(
            f"warm_start: {name} is neither a file nor a study in this storage (studies "
            f"there: {names}); give an export (exports/<study>/best.yaml), a YAML list of "
            "parameter sets, or a study name"
        ) from None
    complete = [
        t
        for t in other.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.values
    ]
    front = set(pareto_numbers(other))  # of several objectives: the front first
    sign = -1.0 if maximizes(other) else 1.0
    ranked = sorted(complete, key=lambda t: (t.number not in front, sign * t.values[0], t.number))
    fitting = [dict(t.params) for t in ranked if not _misfit(t.params, specs, "")]
    if not fitting:
        best = f"its best, trial {ranked[0].number}," if ranked else ""
        why = f": {_misfit(ranked[0].params, specs, best)}" if ranked else ""
        raise HarnessError(
            f"warm_start: study {name} has no complete trial whose parameters fit this "
            f"study's space ({len(complete)} complete{why})"
        )
    return fitting[:k]


def _names(open_storage: Callable[[], optuna.storages.BaseStorage]) -> list[str]:
    try:
        return list(optuna.get_all_study_names(open_storage()))
    except HarnessError:  # no storage yet
        return []
