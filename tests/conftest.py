"""Shared test helpers: run the real CLI in a temp directory, shrunk to seconds.

Tests compose the real study configs and shrink them (tiny net, 2 epochs, digits), and
point every store at a temp directory: nothing is written into the repo's mlruns/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from search.study import open_storage
from tests.services import mlflow_server, postgres_url  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def tiny(mlruns: Path, *extra: str) -> list[str]:
    """Overrides that make deep_dnn a seconds-long study on digits, stored under ``mlruns``."""
    return [
        "dataset=digits",
        "model.depth=3",
        "model.width=16",
        "train.epochs=2",
        "train.batch_size=64",
        f"mlruns_dir={mlruns}",
        *extra,
    ]


def run_cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    env.pop("HYDRA_FULL_ERROR")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def study_in(work: Path, name: str = "deep_dnn") -> optuna.Study:
    """The study a CLI run left in ``work``'s default storage (the journal file)."""
    return optuna.load_study(study_name=name, storage=open_storage(str(journal_path(work))))


def client_in(work: Path) -> MlflowClient:
    """The MLflow store a CLI run left in ``work`` (the default SQLite backend)."""
    return MlflowClient(f"sqlite:///{work}/mlruns/mlflow.db")


def journal_path(work: Path) -> Path:
    return work / "mlruns" / "optuna.journal"


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """A temp working directory (the CLI's cwd) with its own mlruns/."""
    (tmp_path / "mlruns").mkdir()
    return tmp_path


def compose(*overrides: str, config_name: str = "run") -> DictConfig:
    """A real config (``run``, ``report``, ...) as the CLI composes it, resolved, without the
    hydra node."""
    with initialize_config_dir(config_dir=str(REPO / "studies"), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
