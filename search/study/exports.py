"""A trial as an exported config: what ``best.yaml`` holds (``search.export``, the report's
per-arm configs) and ``search.train`` re-trains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.trial import FrozenTrial

from search.cli.errors import HarnessError
from search.config.checks import storage_identity
from search.study.front import first_value
from search.study.names import Attr

__all__ = ["trial_export"]


def trial_export(
    trial: FrozenTrial, study_name: str, storage: str, names: Sequence[str] = ()
) -> dict[str, Any]:
    """The trial's stored config with a ``source`` mapping: where it came from, and the
    value it scored (of several objectives, the first; ``values`` names each by
    ``names``, the study's metrics)."""
    config = trial.user_attrs.get(Attr.CONFIG)
    if not isinstance(config, dict):
        raise HarnessError(f"trial {trial.number} of study {study_name} has no stored config")
    source: dict[str, Any] = {
        "study_name": study_name,
        "trial_number": trial.number,
        "value": first_value(trial),
    }
    if trial.values and len(trial.values) > 1:
        labels = list(names) if len(names) == len(trial.values) else range(len(trial.values))
        source["values"] = {str(k): float(v) for k, v in zip(labels, trial.values, strict=True)}
    source["mlflow_run_id"] = trial.user_attrs.get(Attr.MLFLOW_RUN_ID)
    source["storage"] = storage_identity(storage)
    return {**config, "source": source}
