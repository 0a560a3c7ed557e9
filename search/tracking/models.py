"""Trained models kept in MLflow: a Keras model logged as an MLflow 3 logged model of a run,
registered as a version of the study's registered model, and the ``champion`` alias.

A logged model uses MLflow's Keras flavour (the ``.keras`` file, the model's signature and
an input example), is linked to the run it was trained in, to the metrics of the epoch whose
weights it holds (early stopping restores the best) and to the run's final metrics, and
loads with ``mlflow.pyfunc.load_model``. The registered model is named after the study;
each version names its trial (or the trial a re-train re-trains) and the value it scored.
``crown`` points ``champion`` at the version of the best trial: it looks at every version,
so a worker that registers late, a continued study or a second worker racing for the alias
all end with the same champion.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mlflow.entities import LoggedModelStatus, Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from search.study.names import Tag

if TYPE_CHECKING:
    import keras

__all__ = [
    "ALIAS",
    "MODEL_FILE",
    "KeptModel",
    "champion",
    "crown",
    "download_model",
    "log_keras_model",
]

log = logging.getLogger(__name__)
ALIAS = "champion"
MODEL_FILE = "data/model.keras"  # where the Keras flavour writes the model in a logged model


@dataclass
class KeptModel:
    """A model to keep with a run: ``register`` (with ``value``) also makes it a version
    of the registered model ``register`` names; ``tags`` go on the logged model and the
    version (the trial it came from)."""

    model: keras.Model
    example: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    register: str = ""
    value: float | None = None
    maximize: bool = True
    crown: bool = True  # a trial's version may become the champion, a re-train's not
    step: int = 0  # the epoch whose weights it holds: that epoch's metrics are linked to it


class _KerasFlavour:
    """``mlflow.keras`` that first makes the folder its input example is written to
    (MLflow issue 16183: ``log_model`` with an input example fails without it)."""

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path: str, validate_serving_input: bool = True, **kwargs: Any) -> None:
        import mlflow.keras

        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)


def log_keras_model(
    client: MlflowClient,
    experiment_id: str,
    run_id: str,
    kept: KeptModel,
    metrics: Sequence[Metric] = (),
) -> str:
    """Log ``kept.model`` as a logged model of ``run_id``; its model id. Linked to the
    metrics of epoch ``kept.step`` and to the run's final ``metrics`` (logged before);
    registered (and crowned) when ``kept.register`` names a registered model."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    logged = client.create_logged_model(
        experiment_id,
        name="model",
        source_run_id=run_id,
        params={k: str(v) for k, v in kept.params.items()},
        tags=kept.tags,
        model_type="keras",
    )
    with _use_tracking_uri(client.tracking_uri):  # Model.log reads the process's store
        try:
            _save(client, run_id, kept, logged.model_id, metrics)
        except BaseException:  # not left PENDING: the model view shows it failed
            with contextlib.suppress(Exception):
                client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        if kept.register:  # the registry reads the version's source (models:/id) there too
            _register(client, kept, logged.model_id, run_id)
    return str(logged.model_id)


def _save(
    client: MlflowClient, run_id: str, kept: KeptModel, model_id: str, metrics: Sequence[Metric]
) -> None:
    """The model's files, signature and input example into logged model ``model_id``, and
    the run's final ``metrics`` linked to it."""
    import keras
    import mlflow
    from mlflow.models import infer_signature

    example = np.asarray(kept.example)
    signature = infer_signature(example, np.asarray(kept.model.predict(example, verbose=0)))
    mlflow.models.Model.log(
        artifact_path=None,
        name="model",
        flavor=_KerasFlavour(),
        run_id=run_id,
        model_id=model_id,
        model=kept.model,
        signature=signature,
        input_example=example,
        pip_requirements=[f"keras=={keras.__version__}", *_backend_requirement()],
        validate_serving_input=False,  # it would load the model again (0.4 s)
        step=kept.step,  # links that epoch's metrics to the model
    )
    final = [Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id) for m in metrics]
    if final:
        client.log_batch(run_id, metrics=final)


def _backend_requirement() -> list[str]:
    import keras

    if keras.backend.backend() != "tensorflow":
        return []
    import tensorflow as tf

    return [f"tensorflow=={tf.__version__}"]


def _register(client: MlflowClient, kept: KeptModel, model_id: str, run_id: str) -> None:
    name = kept.register
    try:
        client.get_registered_model(name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # another worker made it a moment ago
            client.create_registered_model(
                name, description=f"Models of the search study {name} (alias {ALIAS}: the best)"
            )
    tags = dict(kept.tags)
    if kept.value is not None:
        tags[Tag.VALUE] = repr(float(kept.value))
    version = client.create_model_version(
        name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
    ).version
    crowned = crown(client, name, kept.maximize) == str(version) if kept.crown else False
    whose = (
        f"re-train of trial {tags[Tag.SOURCE_TRIAL]}"
        if Tag.SOURCE_TRIAL in tags
        else f"trial {tags.get(Tag.TRIAL, '?')}"
    )
    log.info(f"{whose}: model kept as {name} version {version}{f' (@{ALIAS})' if crowned else ''}")


def crown(client: MlflowClient, name: str, maximize: bool) -> str | None:
    """Point ``champion`` at the version of the best trial (ties: the lower trial number,
    as Optuna's ``best_trial``); the version, or None when no trial has one."""
    best: tuple[float, int, str] | None = None
    for version in client.search_model_versions(f"name = '{name}'"):
        tags = version.tags
        if Tag.TRIAL not in tags or Tag.VALUE not in tags or Tag.SOURCE_TRIAL in tags:
            continue
        value = float(tags[Tag.VALUE])
        key = (value if maximize else -value, -int(tags[Tag.TRIAL]), str(version.version))
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return None
    if champion(client, name) != best[2]:
        client.set_registered_model_alias(name, ALIAS, best[2])
    return best[2]


def champion(client: MlflowClient, name: str) -> str | None:
    """The version ``champion`` points at, or None."""
    try:
        return str(client.get_model_version_by_alias(name, ALIAS).version)
    except MlflowException:
        return None


def download_model(client: MlflowClient, model_id: str, dest: Path) -> None:
    """Copy the ``.keras`` file of logged model ``model_id`` to ``dest``."""
    import mlflow.artifacts

    logged = client.get_logged_model(model_id)
    with tempfile.TemporaryDirectory(prefix="search-model-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{logged.artifact_location.rstrip('/')}/{MODEL_FILE}",
            dst_path=tmp,
            tracking_uri=client.tracking_uri,
        )
        shutil.move(path, dest)
