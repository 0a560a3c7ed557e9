"""Optuna side of a study: storage, sampler and pruner from the config, open or continue."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from search.config import as_dict
from search.errors import HarnessError, first_line
from search.space import ParamSpec, grid_search_space

__all__ = [
    "FINISHED",
    "count_finished",
    "load_existing_study",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "open_study",
]

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

_SAMPLERS: dict[str, Any] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "grid": optuna.samplers.GridSampler,
}
_PRUNERS: dict[str, Any] = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}


def make_sampler(cfg: DictConfig, specs: list[ParamSpec], seed: int) -> optuna.samplers.BaseSampler:
    """``sampler.name`` picks the Optuna sampler; its other keys are the sampler's arguments."""
    name, kwargs = _name_and_kwargs(cfg, "sampler", _SAMPLERS)
    if name == "grid":
        kwargs["search_space"] = grid_search_space(specs)
    if name == "cmaes":
        kwargs.setdefault("warn_independent_sampling", False)
    return _construct("sampler", name, _SAMPLERS[name], seed=seed, **kwargs)  # type: ignore[no-any-return]


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    """``pruner.name`` picks the Optuna pruner; its other keys are the pruner's arguments."""
    name, kwargs = _name_and_kwargs(cfg, "pruner", _PRUNERS)
    return _construct("pruner", name, _PRUNERS[name], **kwargs)  # type: ignore[no-any-return]


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


def open_study(
    cfg: DictConfig,
    specs: list[ParamSpec],
    storage: optuna.storages.BaseStorage,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study, or load it to continue; the sampler's seed moves on with the study."""
    try:
        study = optuna.create_study(
            study_name=str(cfg.study_name),
            storage=storage,
            direction="minimize" if cfg.direction == "minimize" else "maximize",
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except SQLAlchemyError as exc:
        raise HarnessError(f"storage: cannot open {cfg.storage} ({first_line(exc)})") from None
    if study.trials:  # a continued study: don't replay the first run's random draws
        study.sampler = make_sampler(cfg, specs, seed=int(cfg.seed) + len(study.trials))
    return study


def load_existing_study(storage_url: str, study_name: str) -> optuna.Study:
    """Load a study that must already exist (export, report): never creates anything."""
    storage = open_storage(storage_url, create=False)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise HarnessError(
            f"no study '{study_name}' in {storage_url} (studies there: {names}); "
            f"run python -m search.run study={study_name} first"
        ) from None


def open_storage(
    url: str, create: bool = True, heartbeat_interval: int | None = None
) -> optuna.storages.BaseStorage:
    """The Optuna storage named by ``url``: a file path is a journal file (safe for parallel
    workers on one machine), a database URL an RDB storage (SQLite for one process,
    PostgreSQL/MySQL for many machines; heartbeats on with ``heartbeat_interval``)."""
    if "://" not in url:
        return _journal(Path(url).expanduser(), create)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise HarnessError(
            f"storage: '{url}' is neither a file path nor a database URL; "
            "e.g. mlruns/optuna.journal or postgresql+psycopg://user@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        path = Path(parsed.database).expanduser()
        if not create and not path.is_file():
            raise HarnessError(f"storage: no study database at {path}; run search.run first")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(parsed),
                heartbeat_interval=heartbeat_interval,
                grace_period=2 * heartbeat_interval if heartbeat_interval else None,
            )
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        shown = parsed.render_as_string(hide_password=True)
        raise HarnessError(f"storage: cannot open {shown} ({first_line(exc)})") from None


def _engine_kwargs(parsed: URL) -> dict[str, Any]:
    """Fail fast on an unreachable server instead of waiting for the OS's TCP timeout."""
    if parsed.get_backend_name() == "postgresql":
        return {"connect_args": {"connect_timeout": 10}}
    return {}


def _journal(path: Path, create: bool) -> optuna.storages.BaseStorage:
    if path.is_dir():
        raise HarnessError(
            f"storage: {path} is a directory; give a file, e.g. {path}/optuna.journal"
        )
    if not create and not path.is_file():
        raise HarnessError(f"storage: no study journal at {path}; run search.run first")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"storage: cannot open the journal {path} ({first_line(exc)})") from None


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))
