"""The MLflow store a tracker writes to: reached, set up once, or named in one line.

A new SQLite store is set up (MLflow's schema migrations, run by ``MlflowClient``) under
``search.cli.locks.first_use``: two commands started together on a new ``mlruns_dir`` do
it one after the other. A store that cannot be used (no database, a refused file store, a
file that is not MLflow's) is a ``HarnessError`` naming it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from search.cli.errors import HarnessError, first_line
from search.cli.locks import first_use

__all__ = ["EXPERIMENT_KIND", "make_client"]

# MLflow's tag for what an experiment holds: training runs, not GenAI traces (the UI reads
# it where its GenAI / Model training switch is off; see search.ui)
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def make_client(tracking_uri: str) -> MlflowClient:
    try:
        with _setup_lock(tracking_uri):  # MlflowClient migrates a new database's schema
            return MlflowClient(tracking_uri=tracking_uri)
    except MlflowException as exc:  # e.g. MLflow 3.13+ refuses a plain ./mlruns file store
        raise HarnessError(
            f"tracking_uri: cannot use {tracking_uri} ({first_line(exc)}); "
            "use sqlite:///mlruns/mlflow.db or http://host:port"
        ) from None
    except (SQLAlchemyError, OSError) as exc:  # a file that is no MLflow database
        raise HarnessError(
            f"tracking_uri: cannot read the MLflow store {tracking_uri} ({first_line(exc)}); "
            "it may be corrupt: move it away to start afresh, or give another tracking_uri"
        ) from None


def _setup_lock(uri: str) -> contextlib.AbstractContextManager[None]:
    """``first_use`` for an SQLite store (a server sets itself up)."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    return first_use(Path(uri.removeprefix("sqlite:///")).expanduser())
