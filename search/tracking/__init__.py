"""The MLflow side of a search: the study's experiment, parent run and trial runs
(``tracker``, ``runs``, ``params``) on a store reached or set up once (``store``), MLflow
brought up to date with the Optuna study (``sync``), the study's summary and pictures on
its parent run (``summary``, ``plots``), and the trained models kept in MLflow's registry
(``models``)."""

from __future__ import annotations

from search.tracking.models import ALIAS, MODEL_FILE, KeptModel, champion, crown, download_model
from search.tracking.params import flatten_config, run_name
from search.tracking.plots import learning_curves, optuna_figures, write_study_plots
from search.tracking.runs import TrialRun
from search.tracking.summary import publish_summary, study_summary, trials_frame
from search.tracking.sync import TrialRecord, backfill, close_trial_run, sync_study, trial_record
from search.tracking.tracker import StudyTracker

__all__ = [
    "ALIAS",
    "MODEL_FILE",
    "KeptModel",
    "StudyTracker",
    "TrialRecord",
    "TrialRun",
    "backfill",
    "champion",
    "crown",
    "download_model",
    "close_trial_run",
    "flatten_config",
    "learning_curves",
    "optuna_figures",
    "publish_summary",
    "run_name",
    "study_summary",
    "sync_study",
    "trial_record",
    "trials_frame",
    "write_study_plots",
]
