"""``python -m search.sync study=<name>``: make MLflow agree with the Optuna study.

Optuna is the record of what happened; MLflow is where people look. When the two
disagree (the MLflow store was unreachable during a trial, a worker was killed), this
back-fills a run for every finished trial that has none (params, the reported metric per
epoch, final metrics, outcome) and closes every run still RUNNING whose trial has
finished (a killed worker's trial: KILLED). ``search.run`` does the same when it starts.
"""

from __future__ import annotations

import logging

import hydra
import optuna
from omegaconf import DictConfig
from optuna.trial import FrozenTrial, TrialState

from search.cli import entry, guarded
from search.orphans import ORPHAN_ATTR
from search.storage import load_existing_study
from search.summary import publish_summary
from search.tracking import StudyTracker, TrialRecord

__all__ = ["sync_study", "trial_record"]

log = logging.getLogger("search")
_OUTCOMES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_INTERRUPTS = ("KeyboardInterrupt", "Terminated")


def sync_study(study: optuna.Study, tracker: StudyTracker, metric: str) -> tuple[int, int]:
    """Back-fill missing runs and close stale ones; returns (created, closed)."""
    runs = tracker.trial_runs()
    created = closed = 0
    for trial in study.get_trials(deepcopy=False, states=_OUTCOMES):
        record = trial_record(trial, metric)
        mine = runs.get(trial.number, [])
        if not mine:
            tracker.backfill(record)
            created += 1
        for run in mine:
            if run.info.status == "RUNNING":
                tracker.close_trial_run(run.info.run_id, record)
                closed += 1
    if created or closed:
        log.info(
            f"MLflow synced with the study: {created} trial run(s) back-filled, "
            f"{closed} left RUNNING closed"
        )
    return created, closed


def trial_record(trial: FrozenTrial, metric: str) -> TrialRecord:
    attrs = trial.user_attrs
    tags: dict[str, str] = {k: str(attrs[k]) for k in ("diagnosis", "error") if k in attrs}
    start = trial.datetime_start or trial.datetime_complete
    end = trial.datetime_complete or start
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        status=_status(trial),
        params=trial.params,
        config=attrs.get("config") or {},
        metric=metric,
        curve=trial.intermediate_values,
        metrics={k: float(v) for k, v in (attrs.get("metrics") or {}).items()},
        tags=tags,
        start_ms=int(start.timestamp() * 1000) if start else 0,
        end_ms=int(end.timestamp() * 1000) if end else 0,
    )


def _status(trial: FrozenTrial) -> str:
    """A failed trial with no error of its own was killed (orphaned, stale heartbeat), as was
    one that Ctrl-C or SIGTERM ended."""
    if trial.state != TrialState.FAIL:
        return "FINISHED"
    error = str(trial.user_attrs.get("error", ""))
    killed = trial.user_attrs.get(ORPHAN_ATTR) or not error or error.startswith(_INTERRUPTS)
    return "KILLED" if killed else "FAILED"


def run_sync(cfg: DictConfig) -> None:
    study = load_existing_study(str(cfg.storage), str(cfg.study_name))
    tracker = StudyTracker(str(cfg.tracking_uri), str(cfg.artifact_root), str(cfg.study_name))
    tracker.check()
    tracker.open()
    created, closed = sync_study(study, tracker, str(cfg.metric))
    publish_summary(study, tracker)
    log.info(
        f"study {cfg.study_name}: {len(study.trials)} trials; "
        f"{created} run(s) back-filled, {closed} closed; summary updated on the parent run"
    )


@hydra.main(version_base="1.3", config_path="../studies", config_name="run")
def main(cfg: DictConfig) -> None:
    guarded(lambda: run_sync(cfg))


if __name__ == "__main__":
    entry(main, "run")
