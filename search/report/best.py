"""Each arm's best configuration and the commands that re-train it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from search.cli import next_command
from search.report.arms import Arms, _float, _get, best_row
from search.study.exports import trial_export
from search.study.front import best_trial
from search.study.names import Attr

__all__ = ["BestConfig", "best_configs", "shown_storage", "write_trial_config"]


@dataclass(frozen=True)
class BestConfig:
    arm: str
    study: str
    trial: int
    state: str
    value: float
    test_metric: str  # test_accuracy, test_mae: what test_value is
    test_value: float
    run_id: str
    params: dict[str, Any]
    commands: list[str]
    path: Path | None  # the config written for this arm (None: the study's export)


def best_configs(arms: Arms, main: optuna.Study, cfg: DictConfig, out: Path) -> list[BestConfig]:
    """Each arm's best trial and how to re-train it: the study's overall best through
    ``search.export``, any other arm's best from ``<out>/best_<arm>.yaml`` written here."""
    try:
        overall = (main.study_name, best_trial(main).number)
    except ValueError:
        overall = ("", -1)
    made = []
    for arm in arms.order:
        row = best_row(arms, arm)
        if row is None:
            continue
        trial = arms.trial(row)
        path = None
        if (str(row["study"]), trial.number) == overall:
            commands = [
                next_command("search.export", cfg),
                f"python -m search.train from=exports/{main.study_name}/best.yaml",
            ]
        else:
            path = write_trial_config(trial, str(row["study"]), str(cfg.storage), out, arm)
            commands = [f"python -m search.train from={path}"]
        made.append(
            BestConfig(
                arm=arm,
                study=str(row["study"]),
                trial=trial.number,
                state=trial.state.name,
                value=float(row["value"]),
                test_metric=arms.test_metric,
                test_value=_float(_get(row, arms.test_metric)),
                run_id=str(trial.user_attrs.get(Attr.MLFLOW_RUN_ID, "")),
                params=dict(trial.params),
                commands=commands,
                path=path,
            )
        )
    return made


def shown_storage(storage: str) -> str:
    if "://" not in storage:
        return storage
    try:
        return str(make_url(storage).render_as_string(hide_password=True))
    except ArgumentError:
        return storage


def write_trial_config(trial: FrozenTrial, study: str, storage: str, out: Path, arm: str) -> Path:
    """The trial's stored config with a ``source`` mapping, as ``search.export`` writes
    ``best.yaml``: runnable with ``python -m search.train from=<path>``."""
    config = trial_export(trial, study, storage)
    path = out / f"best_{_slug(arm)}.yaml"
    OmegaConf.save(OmegaConf.create(config), path)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "arm"
