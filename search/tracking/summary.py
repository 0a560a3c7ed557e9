"""A study as numbers and a table (pandas): for the parent run and for export."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import pandas as pd
from mlflow.entities import Run

from search.study.front import best_trial, first_value, is_multi, pareto_numbers
from search.study.names import Attr, Tag
from search.study.storage import count_finished
from search.tracking.plots import write_study_plots
from search.tracking.tracker import StudyTracker

__all__ = ["publish_summary", "study_summary", "trials_frame"]


def publish_summary(study: optuna.Study, tracker: StudyTracker) -> dict[str, float]:
    """The study's counts, best trial, trials table (CSV) and plots (``search.tracking.plots``)
    on its MLflow parent run."""
    metrics, tags = study_summary(study)
    if not tracker.online:
        return metrics
    frame = trials_frame(study)
    runs = tracker.trial_runs()
    if not frame.empty:  # back-filled runs are known by their trial number only
        ids = {n: r[0].info.run_id for n, r in runs.items()}
        frame[Attr.MLFLOW_RUN_ID] = [ids.get(int(n), "") for n in frame["number"]]
    if is_multi(study):
        _mark_front(study, tracker, runs)
    with tempfile.TemporaryDirectory(prefix="search-study-") as tmp:
        csv = Path(tmp) / "trials.csv"
        frame.to_csv(csv, index=False)
        made = write_study_plots(study, Path(tmp), tracker)
        pages = [path for path in made if path.parent == Path(tmp)]
        tracker.summarize(metrics, tags, [csv, *pages], folders={"plots": Path(tmp) / "plots"})
    return metrics


def _mark_front(study: optuna.Study, tracker: StudyTracker, runs: dict[int, list[Run]]) -> None:
    """Tag each trial run ``search.pareto`` true or false (the front moves as trials come):
    the MLflow UI then finds the front with ``tags.`search.pareto` = 'true'``."""
    front = set(pareto_numbers(study))
    for number, mine in runs.items():
        want = "true" if number in front else "false"
        for run in mine:
            if run.data.tags.get(Tag.PARETO) != want:
                tracker.call(tracker.client.set_tag, run.info.run_id, Tag.PARETO, want)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, params, duration and MLflow run id. Of a
    multi-objective study: ``value`` is the first objective's, ``values_<metric>`` each
    objective's, and ``pareto`` marks the trials on the Pareto front."""
    frame = study.trials_dataframe(
        attrs=("number", "state", "value", "datetime_start", "duration", "params", "user_attrs")
    )
    if frame.empty:
        return frame
    if is_multi(study):
        named = [c for c in frame.columns if c.startswith("values_")]
        frame.insert(2, "value", frame[named[0]])
        front = set(pareto_numbers(study))
        frame.insert(3 + len(named), "pareto", frame["number"].isin(front))
    frame = frame.drop(columns=[c for c in frame.columns if c == f"user_attrs_{Attr.CONFIG}"])
    if f"user_attrs_{Attr.METRICS}" in frame:
        metrics = pd.json_normalize(
            [m if isinstance(m, dict) else {} for m in frame.pop(f"user_attrs_{Attr.METRICS}")]
        )
        frame = pd.concat([frame, metrics.set_index(frame.index)], axis=1)
    duration = pd.to_timedelta(frame.pop("duration"))  # all None while every trial runs
    frame["duration_seconds"] = duration.dt.total_seconds()
    renamed = {
        c: c.removeprefix("user_attrs_") for c in frame.columns if c.startswith("user_attrs_")
    }
    return frame.rename(columns=renamed)


def study_summary(study: optuna.Study) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and tags for the parent run: counts by state, best value and params (of
    several objectives: the first's best, and the trials on the Pareto front)."""
    trials = study.get_trials(deepcopy=False)
    metrics: dict[str, float] = {
        "n_trials": float(len(trials)),
        "n_finished_trials": float(count_finished(study)),
    }
    for state in (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    ):
        metrics[f"n_{state.name.lower()}"] = float(sum(t.state == state for t in trials))
    tags: dict[str, str] = {}
    try:
        best = best_trial(study)
    except ValueError:
        return metrics, tags
    value = first_value(best)
    metrics["best_value"] = value if value is not None else float("nan")
    if is_multi(study):
        front = pareto_numbers(study)
        metrics["n_pareto_trials"] = float(len(front))
        tags[Tag.PARETO_TRIALS] = ",".join(str(n) for n in front)
    tags[Tag.BEST_TRIAL] = str(best.number)
    tags[Tag.BEST_RUN_ID] = str(best.user_attrs.get(Attr.MLFLOW_RUN_ID, ""))
    for name, value in best.params.items():
        tags[f"{Tag.BEST_PARAM}{name}"] = str(value)
    return metrics, tags
