"""Checks on a composed config that fail fast, before any study, experiment or run exists."""

from __future__ import annotations

import math
import re
from importlib.metadata import entry_points
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from search.cli.errors import HarnessError
from search.config.devices import check_devices
from search.config.task import task_of

__all__ = [
    "check_config",
    "check_storage",
    "check_study_name",
    "check_tracking_uri",
    "storage_file",
    "storage_identity",
]

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


def storage_file(url: str) -> Path | None:
    """The file a storage lives in: a journal's path, an SQLite database's; None for a
    server (or a URL that does not parse)."""
    if "://" not in url:
        return Path(url).expanduser()
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database).expanduser()
    return None


def storage_identity(url: str) -> str:
    """The storage as one string whatever the working directory: a journal file or an
    SQLite database by its absolute path, a server's URL without its password."""
    path = storage_file(url)
    if "://" not in url and path is not None:
        return str(path.resolve())
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if path is not None:
        parsed = parsed.set(database=str(path.resolve()))
    return str(parsed.render_as_string(hide_password=True))


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


# whole-number keys and their least value: the harness reads them as they are
_WHOLE = {
    "n_trials": 1,
    "warm_start_k": 1,
    "train.epochs": 1,
    "train.batch_size": 1,
    "train.patience": 0,
    "train.verbose": 0,
    "train.steps_per_execution": 1,
    "train.traced_models": 0,
    "pack_queue": 1,
    "max_failures": 1,
    "heartbeat_interval": 1,
    "dataset.split_seed": 0,
    "diagnostics.probe_examples": 1,
    "diagnostics.chance_epochs": 1,
    "evaluate.ece_bins": 1,
    "evaluate.mc_dropout_samples": 0,
}
_FLAGS = ("accept_changes", "train.jit_compile")  # true or false
# number keys: (least value, whether the least value itself is allowed, largest or None)
_NUMBERS: dict[str, tuple[float, bool, float | None]] = {
    "diagnostics.chance_accuracy_margin": (0.0, True, None),
    "diagnostics.chance_loss_margin": (0.0, True, None),
    "lr_find.epochs": (0.0, False, None),
    "lr_find.smoothing": (0.0, True, 0.999),
    "lr_find.stop_factor": (1.0, False, None),
    "lr_find.divisor": (0.0, False, None),
}


_LOG_MODELS = ("best", "all", "none")


def check_config(cfg: DictConfig) -> None:
    check_study_name(str(cfg.study_name))
    check_storage(str(cfg.storage))
    check_tracking_uri(str(cfg.tracking_uri))
    for key, least in _WHOLE.items():
        _whole(key, OmegaConf.select(cfg, key), least)
    if cfg.get("pack", "auto") != "auto":
        _whole("pack", cfg.pack, 1, "auto or ")
    _check_pack_record(cfg)
    for key, (low, inclusive, high) in _NUMBERS.items():
        _number(key, OmegaConf.select(cfg, key), low, inclusive, high)
    timeout = cfg.timeout
    if timeout is not None and not _positive(timeout):
        raise HarnessError(f"timeout must be a positive number of seconds or null, got {timeout!r}")
    rate = cfg.optimizer.learning_rate
    if rate != "auto" and not _positive(rate):
        raise HarnessError(
            f"optimizer.learning_rate must be a positive number or auto, got {rate!r}"
        )
    check_devices(cfg)
    for key in _FLAGS:
        if not isinstance(OmegaConf.select(cfg, key), bool):
            raise HarnessError(f"{key} must be true or false, got {OmegaConf.select(cfg, key)!r}")
    keep = OmegaConf.select(cfg, "tracking.log_models")
    if keep not in _LOG_MODELS:
        raise HarnessError(
            f"tracking.log_models must be {', '.join(_LOG_MODELS[:-1])} or {_LOG_MODELS[-1]}, "
            f"got {keep!r}"
        )
    task_of(cfg)  # the loss, metrics, metric and direction go together


def _positive(value: object) -> bool:
    """A finite number > 0 (not a bool, not nan or inf)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _check_pack_record(cfg: DictConfig) -> None:
    """What a packed trial's config records of its pack (``train.pack_*``)."""
    for key, least in (("seed", 0), ("epoch", 0), ("place", 0), ("places", 1)):
        if (value := OmegaConf.select(cfg, f"train.pack_{key}")) is not None:
            _whole(f"train.pack_{key}", value, least)
    place, places = OmegaConf.select(cfg, "train.pack_place"), cfg.train.get("pack_places")
    if place is not None and places is not None and place >= places:
        raise HarnessError(
            f"train.pack_place must be below train.pack_places ({places}), got {place}: "
            "the place a packed trial trained at, of its pack's places"
        )


def _whole(key: str, value: object, least: int, other: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        what = "a positive whole number" if least == 1 else f"a whole number >= {least}"
        raise HarnessError(f"{key} must be {other}{what}, got {value!r}")


def _number(key: str, value: object, low: float, inclusive: bool, high: float | None) -> None:
    valid = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= low if inclusive else value > low)
        and (high is None or value <= high)
    )
    if not valid:
        bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and <= {high:g}" if high else "")
        raise HarnessError(f"{key} must be a number {bound}, got {value!r}")
