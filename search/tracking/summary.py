"""A study as numbers and a table (pandas): for the parent run and for export."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import pandas as pd

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
    if not frame.empty:  # back-filled runs are known by their trial number only
        runs = {n: r[0].info.run_id for n, r in tracker.trial_runs().items()}
        frame[Attr.MLFLOW_RUN_ID] = [runs.get(int(n), "") for n in frame["number"]]
    with tempfile.TemporaryDirectory(prefix="search-study-") as tmp:
        csv = Path(tmp) / "trials.csv"
        frame.to_csv(csv, index=False)
        made = write_study_plots(study, Path(tmp), tracker)
        pages = [path for path in made if path.parent == Path(tmp)]
        tracker.summarize(metrics, tags, [csv, *pages], folders={"plots": Path(tmp) / "plots"})
    return metrics


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, params, duration and MLflow run id."""
    frame = study.trials_dataframe(
        attrs=("number", "state", "value", "datetime_start", "duration", "params", "user_attrs")
    )
    if frame.empty:
        return frame
    frame = frame.drop(columns=[c for c in frame.columns if c == f"user_attrs_{Attr.CONFIG}"])
    if f"user_attrs_{Attr.METRICS}" in frame:
        metrics = pd.json_normalize(
            [m if isinstance(m, dict) else {} for m in frame.pop(f"user_attrs_{Attr.METRICS}")]
        )
        frame = pd.concat([frame, metrics.set_index(frame.index)], axis=1)
    frame["duration_seconds"] = frame.pop("duration").dt.total_seconds()
    renamed = {
        c: c.removeprefix("user_attrs_") for c in frame.columns if c.startswith("user_attrs_")
    }
    return frame.rename(columns=renamed)


def study_summary(study: optuna.Study) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and tags for the parent run: counts by state, best value and params."""
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
        best = study.best_trial
    except ValueError:
        return metrics, tags
    metrics["best_value"] = float(best.value) if best.value is not None else float("nan")
    tags[Tag.BEST_TRIAL] = str(best.number)
    tags[Tag.BEST_RUN_ID] = str(best.user_attrs.get(Attr.MLFLOW_RUN_ID, ""))
    for name, value in best.params.items():
        tags[f"{Tag.BEST_PARAM}{name}"] = str(value)
    return metrics, tags
