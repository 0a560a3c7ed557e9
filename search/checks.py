"""Checks on a composed config that fail fast, before any study, experiment or run exists."""

from __future__ import annotations

import re

from omegaconf import DictConfig

from search.errors import HarnessError

__all__ = ["check_config", "check_study_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_study_name(name: str) -> None:
    """Study names become experiment names and artifact folders: no separators, no '..'."""
    if not _NAME.match(name) or ".." in name:
        raise HarnessError(
            f"study_name: '{name}' is not allowed; use letters, digits, '_', '-', '.' "
            "(no path separators), e.g. study_name=deep_dnn_v2"
        )


def check_config(cfg: DictConfig) -> None:
    check_study_name(str(cfg.study_name))
    _positive_int(cfg, "n_trials", cfg.n_trials)
    _positive_int(cfg, "train.epochs", cfg.train.epochs)
    _positive_int(cfg, "train.batch_size", cfg.train.batch_size)
    _positive_int(cfg, "max_failures", cfg.max_failures)
    _positive_int(cfg, "workers", cfg.workers)
    _positive_int(cfg, "heartbeat_interval", cfg.heartbeat_interval)
    if int(cfg.train.patience) < 0:
        raise HarnessError(f"train.patience must be >= 0, got {cfg.train.patience}")
    if cfg.timeout is not None and not float(cfg.timeout) > 0:
        raise HarnessError(
            f"timeout must be a positive number of seconds or null, got {cfg.timeout}"
        )
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
