"""A trial as an exported config: what ``best.yaml`` holds (``search.export``, the report's
per-arm configs) and ``search.train`` re-trains."""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial

from search.cli.errors import HarnessError
from search.config.checks import storage_identity
from search.study.names import Attr

__all__ = ["trial_export"]


def trial_export(trial: FrozenTrial, study_name: str, storage: str) -> dict[str, Any]:
    """The trial's stored config with a ``source`` mapping: where it came from."""
    config = trial.user_attrs.get(Attr.CONFIG)
    if not isinstance(config, dict):
        raise HarnessError(f"trial {trial.number} of study {study_name} has no stored config")
    return {
        **config,
        "source": {
            "study_name": study_name,
            "trial_number": trial.number,
            "value": trial.value,
            "mlflow_run_id": trial.user_attrs.get(Attr.MLFLOW_RUN_ID),
            "storage": storage_identity(storage),
        },
    }
