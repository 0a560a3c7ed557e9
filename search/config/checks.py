"""Checks on a composed config that fail fast, before any study, experiment or run exists."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

from omegaconf import DictConfig
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from search.cli.errors import HarnessError

__all__ = ["check_config", "check_storage", "check_study_name", "check_tracking_uri"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):")  # 2+ letters: not a drive (C:)
_STORAGES = (
    "use a journal file (mlruns/optuna.journal), sqlite:///path/optuna.db "
    "or postgresql+psycopg://user@host/db"
)
_PASSWORD = re.compile(r"//([^:/@]*):[^@/]*@")
# the schemes MLflow's tracking store registry knows (plus plugins' entry points)
_TRACKING_SCHEMES = {"file", "sqlite", "postgresql", "mysql", "mssql", "http", "https"}
_TRACKING_SCHEMES |= {"databricks", "databricks-uc", "uc"}


def check_study_name(name: str) -> None:
    """Study names become experiment names and artifact folders: no separators, no '..'."""
    if not _NAME.match(name) or ".." in name:
        raise HarnessError(
            f"study_name: '{name}' is not allowed; use letters, digits, '_', '-', '.' "
            "(no path separators), e.g. study_name=deep_dnn_v2"
        )


def check_storage(url: str) -> None:
    """A journal file path or a database URL SQLAlchemy has a dialect for; the server itself
    is reached later (``search.study.storage.open_storage``)."""
    if "://" not in url:
        match = _SCHEME.match(url)
        if match:
            raise HarnessError(
                f"storage: '{url}' looks like a database URL but has no '//' after "
                f"'{match['scheme']}:'; {_STORAGES}"
            )
        return
    try:
        parsed = make_url(url)
    except ArgumentError:
        shown = _PASSWORD.sub(r"//\1:***@", url)
        raise HarnessError(f"storage: '{shown}' is not a valid database URL; {_STORAGES}") from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise HarnessError(
            f"storage: unknown database '{parsed.drivername}' in "
            f"'{parsed.render_as_string(hide_password=True)}'; {_STORAGES}"
        ) from None


def check_tracking_uri(uri: str) -> None:
    """A scheme MLflow has a tracking store for (reaching it is ``StudyTracker.check``)."""
    match = _SCHEME.match(uri)
    if not match:
        return
    scheme = match["scheme"].lower().split("+")[0]
    plugins = {e.name for e in entry_points(group="mlflow.tracking_store")}
    if scheme not in _TRACKING_SCHEMES | plugins:
        shown = _PASSWORD.sub(r"//\1:***@", uri)
        raise HarnessError(
            f"tracking_uri: unknown scheme '{match['scheme']}' in '{shown}'; use "
            "sqlite:///path/mlflow.db, http://host:port (an MLflow server) "
            "or postgresql://user@host/db"
        )


def check_config(cfg: DictConfig) -> None:
    check_study_name(str(cfg.study_name))
    check_storage(str(cfg.storage))
    check_tracking_uri(str(cfg.tracking_uri))
    _positive_int(cfg, "n_trials", cfg.n_trials)
    _positive_int(cfg, "train.epochs", cfg.train.epochs)
    _positive_int(cfg, "train.batch_size", cfg.train.batch_size)
    _positive_int(cfg, "max_failures", cfg.max_failures)
    _positive_int(cfg, "workers", cfg.workers)
    _positive_int(cfg, "heartbeat_interval", cfg.heartbeat_interval)
    patience = cfg.train.patience
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise HarnessError(f"train.patience must be a whole number >= 0, got {patience!r}")
    timeout = cfg.timeout
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise HarnessError(f"timeout must be a positive number of seconds or null, got {timeout!r}")
    rate = cfg.optimizer.learning_rate
    if rate != "auto" and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
    ):
        raise HarnessError(
            f"optimizer.learning_rate must be a positive number or auto, got {rate!r}"
        )
    if cfg.direction not in ("maximize", "minimize"):
        raise HarnessError(f"direction must be maximize or minimize, got {cfg.direction}")


def _positive_int(cfg: DictConfig, key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HarnessError(f"{key} must be a positive whole number, got {value!r}")
