"""``run_study``, ``trials_frame``, ``export_study`` and ``train_exported`` for Python."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from search.cli import (
    CONFIG_DIR,
    HarnessError,
    command_line_problem,
    handled,
    set_search_path,
    setup_logging,
)
from search.config import unimportable

__all__ = ["export_study", "run_study", "train_exported", "trials_frame"]

log = logging.getLogger("search")


def run_study(
    study: str,
    overrides: Sequence[str] | None = None,
    *,
    builder: Callable[..., Any] | None = None,
) -> optuna.Study:
    """Run or continue a study, as ``python -m search.run study=<study> [overrides]``.

    ``builder``: a model builder function (one defined in a notebook cell will do) that
    replaces the study's model: the study's ``model`` keys and ``space.model`` are left
    out, the ``model.*`` and ``space.model.*`` keys of ``overrides`` are kept (add them with
    ``+``: ``"+model.units=32"``). Returns the Optuna study."""
    from search import run

    words = [f"study={study}", *(overrides or [])]
    with _command("run", words) as cfg:
        if builder is not None:
            _use_builder(cfg, builder, words)
        return run.run_study(cfg)


def trials_frame(study: optuna.Study | str, overrides: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per trial: number, state, value, ``params_*``, duration, diagnosis, the final
    metrics and ``mlflow_run_id``. ``study``: an Optuna study, or a study's name (its
    storage from ``overrides``, as for ``run_study``)."""
    from search.study import load_existing_study
    from search.tracking import trials_frame as frame_of

    if isinstance(study, optuna.Study):
        return frame_of(study)
    with _command("run", [f"study={study}", *(overrides or [])]) as cfg:
        return frame_of(load_existing_study(str(cfg.storage), str(cfg.study_name)))


def export_study(study: str, overrides: Sequence[str] | None = None) -> Path:
    """Export the best trial, as ``python -m search.export``: the path of ``best.yaml``."""
    from search import export

    with _command("export", [f"study={study}", *(overrides or [])]) as cfg:
        return export.export_study(cfg)[0]


def train_exported(path: str | Path, overrides: Sequence[str] | None = None) -> Any:
    """Re-train an exported config, as ``python -m search.train from=<path>``: the fit's
    ``FitResult`` (``value``, ``metrics``, ``history``)."""
    from search import train

    with _command("train", [f"from={path}", *(overrides or [])]) as cfg:
        return train.train_from(cfg)


def _registered(builder: Callable[..., Any]) -> str:
    """Register a builder under its ``module:function`` reference; the reference."""
    from search.models import reference_of, register_builder

    reference = reference_of(builder)
    register_builder(reference)(builder)
    return reference


def _use_builder(cfg: DictConfig, builder: Callable[..., Any], words: list[str]) -> None:
    """The study's model replaced by ``builder`` and the ``model.*`` keys the caller gave;
    of the study's ``space.model``, only what the caller gave too (a searched key the
    caller did not set starts at the builder's default)."""
    reference = _registered(builder)
    why = unimportable(reference)
    if why and cfg.workers == "auto":  # it trains in this process
        cfg.workers = 1
    if why and isinstance(cfg.workers, int) and cfg.workers > 1:
        raise HarnessError(
            f"workers={cfg.workers} trains in other processes, which cannot import the "
            f"builder {reference} ({why}); use workers=1, or move it into a module"
        )
    given = {w.split("=", 1)[0].lstrip("+~") for w in words if "=" in w}
    model: dict[str, Any] = {"builder": reference}
    model |= {k: cfg.model[k] for k in cfg.model if f"model.{k}" in given and k != "builder"}
    space: dict[str, Any] = dict(cfg.space.get("model") or {}) if cfg.space else {}
    kept = {k: v for k, v in space.items() if any(g.startswith(f"space.model.{k}") for g in given)}
    defaults = inspect.signature(builder).parameters
    for key in kept:
        if (
            key not in model
            and key in defaults
            and defaults[key].default is not defaults[key].empty
        ):
            model[key] = defaults[key].default
    dropped = [str(k) for k in cfg.model if k not in model]
    dropped += [f"space.model.{k}" for k in space if k not in kept]
    if dropped:
        log.info(f"builder {reference}: the study's {', '.join(dropped)} left out")
    with open_dict(cfg):
        cfg.model = model
        if kept:
            cfg.space.model = kept
        elif "model" in (cfg.space or {}):
            del cfg.space["model"]


@contextmanager
def _command(config_name: str, words: list[str]) -> Iterator[DictConfig]:
    """The command's config composed from ``words``, with Hydra's runtime config set (the
    printed hints and ``study_name`` read it) for the block only; logging to this cell,
    Ctrl-C handled as the command line does; Keras' session cleared afterwards."""
    setup_logging()
    problem = command_line_problem(config_name, words)
    if problem:
        raise HarnessError(problem)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=words, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        with handled():
            yield cfg
    finally:
        HydraConfig.instance().cfg = None
        set_search_path([])
        _clear_keras()


def _clear_keras() -> None:
    """A notebook's kernel lives on: the models and packs a call kept
    (``search.trial.traces``, ``search.packs.kept``), what it said about packing and Keras'
    state go when it returns."""
    import sys

    if "search.trial.traces" in sys.modules:
        sys.modules["search.trial.traces"].TRACED.clear()
    if "search.packs.kept" in sys.modules:
        sys.modules["search.packs.kept"].PACKS.clear()
    if "search.trial.packed" in sys.modules:
        sys.modules["search.trial.packed"].forget_notes()
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
