"""Make MLflow agree with the Optuna study.

Optuna is the record of what happened; MLflow is where people look. When the two
disagree (the MLflow store was unreachable during a trial, a worker was killed), this
back-fills a run for every finished trial that has none (params, the reported metric per
epoch, final metrics, outcome) and closes every run still RUNNING whose trial has
finished (a killed worker's trial: KILLED), each with the outcome its trial recorded
(``search.study.outcome.recorded``). ``search.run`` does this when it starts;
``python -m search.sync`` on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from mlflow.entities import Metric, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from optuna.trial import FrozenTrial

from search.cli.signals import held
from search.study.front import curve_of
from search.study.names import Attr, Role, Tag
from search.study.outcome import Outcome, recorded
from search.study.revisions import revision_of
from search.study.storage import ENDED
from search.tracking.params import chunks, run_name
from search.tracking.tracker import StudyTracker

__all__ = ["TrialRecord", "backfill", "close_trial_run", "sync_study", "trial_record"]

log = logging.getLogger("search")


@dataclass(frozen=True)
class TrialRecord:
    """What the MLflow side needs to know of a finished Optuna trial."""

    number: int
    outcome: Outcome
    params: Mapping[str, Any]
    config: Mapping[str, Any]
    metric: str
    curve: Mapping[int, float]  # the reported metric by epoch
    metrics: Mapping[str, float]
    start_ms: int
    end_ms: int
    revision: int = 0


def sync_study(study: optuna.Study, tracker: StudyTracker, metric: str) -> tuple[int, int]:
    """Back-fill missing runs and close stale ones; returns (created, closed). A signal is
    held while a run is made or closed: the caller raises it (``raise_pending``) after."""
    ended = study.get_trials(deepcopy=False, states=ENDED)
    runs = tracker.trial_runs()  # after the trials: a trial's run is closed before it ends
    created = closed = 0
    for trial in ended:
        record = trial_record(trial, metric)
        mine = runs.get(trial.number, [])
        with held():  # Ctrl-C waits for this run to be whole and closed
            if not mine:
                backfill(tracker, record)
                created += 1
            for run in mine:
                if run.info.status == "RUNNING":
                    close_trial_run(tracker, run.info.run_id, record)
                    closed += 1
    if created or closed:
        log.info(
            f"MLflow synced with the study: {created} trial run(s) back-filled, "
            f"{closed} left RUNNING closed"
        )
    return created, closed


def trial_record(trial: FrozenTrial, metric: str) -> TrialRecord:
    attrs = trial.user_attrs
    start = trial.datetime_start or trial.datetime_complete
    end = trial.datetime_complete or start
    return TrialRecord(
        number=trial.number,
        outcome=recorded(trial),
        params=trial.params,
        config=attrs.get(Attr.CONFIG) or {},
        metric=metric,
        curve=curve_of(trial),
        metrics={k: float(v) for k, v in (attrs.get(Attr.METRICS) or {}).items()},
        start_ms=int(start.timestamp() * 1000) if start else 0,
        end_ms=int(end.timestamp() * 1000) if end else 0,
        revision=revision_of(trial),
    )


def backfill(tracker: StudyTracker, trial: TrialRecord) -> str:
    """Create the finished run of a trial that has none (MLflow was unreachable)."""
    tags = {
        MLFLOW_PARENT_RUN_ID: tracker.parent_run_id,
        MLFLOW_RUN_NAME: run_name(trial.number, trial.params),
        Tag.ROLE: Role.TRIAL,
        Tag.STUDY: tracker.study_name,
        Tag.TRIAL: str(trial.number),
        Tag.BACKFILLED: "true",
        Tag.REVISION: str(trial.revision),
    }
    client = tracker.client
    run = client.create_run(tracker.experiment_id, start_time=trial.start_ms, tags=tags)
    run_id = str(run.info.run_id)
    tracker.log_config(run_id, trial.config or dict(trial.params))
    epochs = [Metric(trial.metric, v, trial.start_ms, s) for s, v in trial.curve.items()]
    for chunk in chunks(epochs, 1000):
        client.log_batch(run_id, metrics=chunk)
    close_trial_run(tracker, run_id, trial)
    return run_id


def close_trial_run(tracker: StudyTracker, run_id: str, trial: TrialRecord) -> None:
    """Give a run the outcome of its finished trial: final metrics, tags, status."""
    metrics = [Metric(k, float(v), trial.end_ms, 0) for k, v in trial.metrics.items()]
    tags = [RunTag(k, v) for k, v in trial.outcome.tags().items()]
    tracker.client.log_batch(run_id, metrics=metrics, tags=tags)
    tracker.client.set_terminated(run_id, trial.outcome.status, end_time=trial.end_ms)
