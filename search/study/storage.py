"""Where a study lives: the Optuna storage from the config (a journal file or a database),
the study opened or continued in it, and its finished trials."""

from __future__ import annotations

import contextlib
import json
import time
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
from search.config.checks import storage_file
from search.config.objectives import objectives_of
from search.config.space import ParamSpec
from search.study.samplers import make_pruner, use_sampler

__all__ = [
    "ENDED",
    "FINISHED",
    "check_readable",
    "count_finished",
    "load_existing_study",
    "open_storage",
    "open_study",
]

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
ENDED = (*FINISHED, optuna.trial.TrialState.FAIL)  # every state a trial can end in


def open_study(cfg: DictConfig, specs: list[ParamSpec]) -> optuna.Study:
    """Create the study in the config's storage, or load it to continue, with the config's
    pruner and a sampler seeded for where the study stands (``samplers.use_sampler``).
    ``samplers.check_sampling`` has built both once before anything existed."""
    storage = open_storage(str(cfg.storage), heartbeat_interval=int(cfg.heartbeat_interval))
    objectives = objectives_of(cfg.metric, cfg.direction)
    try:
        study = optuna.create_study(
            study_name=str(cfg.study_name),
            storage=storage,
            directions=[objective.direction for objective in objectives],
            pruner=make_pruner(cfg),
            load_if_exists=True,
        )
        named = study.metric_names is not None or len(study.directions) != len(objectives)
        if len(objectives) > 1 and not named:  # a study of other objectives: refused later
            with warnings.catch_warnings():  # set_metric_names is "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([objective.name for objective in objectives])
    except (SQLAlchemyError, ValueError, OSError) as exc:
        raise _unreadable(str(cfg.storage), exc) from None
    use_sampler(study, cfg, specs)
    return study


def check_readable(url: str) -> None:
    """A study file that exists (journal, SQLite) must read as one before anything else is
    made next to it; a server is reached when the study is opened."""
    path = storage_file(url)
    if path is None or not path.exists():
        return
    if "://" not in url and path.is_file():
        _check_last_line(path)
    storage = open_storage(url, create=False)
    try:
        optuna.get_all_study_names(storage)
    except (SQLAlchemyError, ValueError, OSError) as exc:
        raise _unreadable(url, exc) from None


def _check_last_line(journal: Path, settle: float = 0.5) -> None:
    """Optuna reads a journal whose last line is cut off (a process killed mid-write) as if
    the line were not there, then appends after it, which breaks the whole file: refuse.
    A writer holds the journal's lock for one line; a cut line that stays is not one."""
    for attempt in range(2):
        with journal.open("rb") as f:
            f.seek(max(0, journal.stat().st_size - 65536))
            tail = f.read()
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            complete = not tail or (tail.endswith(b"\n") and isinstance(json.loads(last), dict))
        except ValueError:
            complete = False
        if complete:
            return
        if not attempt:
            time.sleep(settle)
    raise HarnessError(
        f"storage: the last line of {journal} is cut off or not JSON (a process killed while "
        "writing?); delete that line to keep the trials before it, or move the file away"
    )


def _unreadable(url: str, exc: BaseException) -> HarnessError:
    return HarnessError(
        f"storage: cannot read {url} ({first_line(exc)}); it may be corrupt or truncated: "
        "move it away to start afresh, or give another storage=..."
    )


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
    except ValueError as exc:  # a line in it is not JSON
        raise _unreadable(str(path), exc) from None
    except OSError as exc:
        raise HarnessError(f"storage: cannot open the journal {path} ({first_line(exc)})") from None


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))
