"""The study's sampler and pruner, from the config's ``sampler`` and ``pruner`` groups.

``name`` picks the Optuna class, the group's other keys are its arguments. One seeding
rule (``sampler_seed``) for a new study, a continued one and each parallel worker: a
continued study does not replay the first run's random draws, and two workers do not
draw the same trials. Every sampler is wrapped in ``OnStep``: a stepped float is stored
on its step's decimals (0.3, not 0.30000000000000004) in the study, its runs and tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search.cli.errors import HarnessError
from search.config.compose import as_dict
from search.config.objectives import objectives_of
from search.config.packing import pack_size
from search.config.space import ParamSpec, grid_search_space
from search.config.steps import on_step

__all__ = [
    "OnStep",
    "PRUNERS",
    "SAMPLERS",
    "check_sampling",
    "make_pruner",
    "make_sampler",
    "pruning_off",
    "sampler_seed",
    "use_sampler",
]

SAMPLERS: dict[str, Any] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "grid": optuna.samplers.GridSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
}
SINGLE_OBJECTIVE = ("cmaes",)  # samplers that refuse a multi-objective study
PRUNERS: dict[str, Any] = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}
WORKER_SEED_STRIDE = 1000  # worker i's seed is i * 1000 past worker 0's


def sampler_seed(seed: int, trials_so_far: int, worker: int = 0) -> int:
    """The sampler's seed: the config's ``seed``, moved on by the trials the study already
    has and by the worker's index."""
    return seed + trials_so_far + WORKER_SEED_STRIDE * worker


def check_sampling(cfg: DictConfig, specs: list[ParamSpec]) -> None:
    """Build the config's sampler and pruner once, so that bad arguments (a grid over an
    unstepped float, an unknown key) are refused before any data, study or run exists."""
    make_sampler(cfg, specs, sampler_seed(int(cfg.seed), 0))
    make_pruner(cfg)
    name, _ = _name_and_kwargs(cfg, "sampler", SAMPLERS)
    if name in SINGLE_OBJECTIVE and _multi(cfg):
        several = [n for n in SAMPLERS if n not in SINGLE_OBJECTIVE]
        raise HarnessError(
            f"sampler={name} optimizes one objective and metric lists several; use "
            f"sampler={several[0]} (or {', '.join(several[1:])})"
        )


def use_sampler(
    study: optuna.Study, cfg: DictConfig, specs: list[ParamSpec], worker: int = 0
) -> None:
    """Give ``study`` the config's sampler, seeded by ``sampler_seed``."""
    seed = sampler_seed(int(cfg.seed), len(study.get_trials(deepcopy=False)), worker)
    study.sampler = make_sampler(cfg, specs, seed)


def make_sampler(cfg: DictConfig, specs: list[ParamSpec], seed: int) -> optuna.samplers.BaseSampler:
    """``sampler.name`` picks the Optuna sampler; its other keys are the sampler's arguments."""
    name, kwargs = _name_and_kwargs(cfg, "sampler", SAMPLERS)
    if name == "grid":
        kwargs["search_space"] = grid_search_space(specs)
    if name == "cmaes":
        kwargs.setdefault("warn_independent_sampling", False)
    if name == "tpe" and pack_size(cfg) > 1:
        kwargs.setdefault("constant_liar", True)  # a pack's trials are asked before any ends
    return OnStep(_construct("sampler", name, SAMPLERS[name], seed=seed, **kwargs))


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    """``pruner.name`` picks the Optuna pruner; its other keys are the pruner's arguments.
    A multi-objective study gets none: Optuna cannot prune one (``pruning_off``)."""
    name, kwargs = _name_and_kwargs(cfg, "pruner", PRUNERS)
    pruner: optuna.pruners.BasePruner = _construct("pruner", name, PRUNERS[name], **kwargs)
    return optuna.pruners.NopPruner() if _multi(cfg) else pruner


def pruning_off(cfg: DictConfig) -> str:
    """Why the config's pruner is not used, or "": Optuna's ``Trial.report`` and pruners
    are single-objective (Optuna issue #3450)."""
    name, _ = _name_and_kwargs(cfg, "pruner", PRUNERS)
    if name == "none" or not _multi(cfg):
        return ""
    return (
        f"Optuna cannot prune a multi-objective study (its issue #3450): pruner={name} is not "
        "used; early stopping and the stuck-at-chance and divergence checks still end trials"
    )


def _multi(cfg: DictConfig) -> bool:
    return len(objectives_of(cfg.metric, cfg.direction)) > 1


def _name_and_kwargs(
    cfg: DictConfig, key: str, table: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    section = cfg[key]
    if isinstance(section, str):
        section = OmegaConf.create({"name": section})
    kwargs = as_dict(section)
    name = str(kwargs.pop("name", ""))
    if name not in table:
        raise HarnessError(f"{key}: unknown {key} '{name}'; use one of: {', '.join(table)}")
    return name, kwargs


def _construct(kind: str, name: str, cls: Any, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"{kind}={name}: bad arguments ({exc})") from None


class OnStep(BaseSampler):
    """``inner``, with each stepped float it samples rounded to the step's decimals before
    Optuna stores it (``search.config.steps.on_step``)."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        sampled = self.inner.sample_relative(study, trial, search_space)
        return {name: on_step(search_space[name], value) for name, value in sampled.items()}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        value = self.inner.sample_independent(study, trial, param_name, param_distribution)
        return on_step(param_distribution, value)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
