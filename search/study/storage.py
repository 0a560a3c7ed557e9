"""Where a study lives: the Optuna storage from the config (a journal file or a database),
the study opened or continued in it, and its finished trials."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from search.cli.errors import HarnessError, first_line
from search.cli.locks import first_use
from search.config.space import ParamSpec
from search.study.samplers import make_pruner, use_sampler

__all__ = [
    "ENDED",
    "FINISHED",
    "count_finished",
    "load_existing_study",
    "open_storage",
    "open_study",
    "storage_identity",
]

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
ENDED = (*FINISHED, optuna.trial.TrialState.FAIL)  # every state a trial can end in


def open_study(cfg: DictConfig, specs: list[ParamSpec]) -> optuna.Study:
    """Create the study in the config's storage, or load it to continue, with the config's
    pruner and a sampler seeded for where the study stands (``samplers.use_sampler``).
    ``samplers.check_sampling`` has built both once before anything existed."""
    storage = open_storage(str(cfg.storage), heartbeat_interval=int(cfg.heartbeat_interval))
    try:
        study = optuna.create_study(
            study_name=str(cfg.study_name),
            storage=storage,
            direction="minimize" if cfg.direction == "minimize" else "maximize",
            pruner=make_pruner(cfg),
            load_if_exists=True,
        )
    except SQLAlchemyError as exc:
        raise HarnessError(f"storage: cannot open {cfg.storage} ({first_line(exc)})") from None
    use_sampler(study, cfg, specs)
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
    setup: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        path = Path(parsed.database).expanduser()
        if not create and not path.is_file():
            raise HarnessError(f"storage: no study database at {path}; run search.run first")
        setup = first_use(path)  # RDBStorage creates a new database's tables
    try:
        with setup, warnings.catch_warnings():  # heartbeats: "experimental" since Optuna 2.9
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"storage: cannot open the journal {path} ({first_line(exc)})") from None


def storage_identity(url: str) -> str:
    """The storage as one string whatever the working directory: a journal file or an
    SQLite database by its absolute path, a server's URL without its password."""
    if "://" not in url:
        return str(Path(url).expanduser().resolve())
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        parsed = parsed.set(database=str(Path(parsed.database).expanduser().resolve()))
    return str(parsed.render_as_string(hide_password=True))


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))
