"""One trial's life, on Keras: its config (``objective.trial_config``), its MLflow run, the
fit (``fit``) with the harness's callbacks (``callbacks``: epochs, the NaN guard), the
diagnostics (``diagnostics``: stuck at chance, dead ReLUs, gradients), the test-set and MC
Dropout figures (``evaluation``), the learning-rate range test (``lr_range``), the history
artifacts (``history``), the GPU it trains on (``devices``), its graphs released
(``graphs``) or its compiled model kept for the next trial of its structure (``traces``),
and its end recorded with ``search.study.outcome``. ``worker`` runs the objective on the
study's trial loop."""

from __future__ import annotations

from search.trial.build import build_compiled, loss_function, preflight
from search.trial.callbacks import EpochRecorder, TrialDiverged
from search.trial.devices import on_gpu, use_gpu, visible_gpus
from search.trial.diagnostics import (
    ChanceDetector,
    StuckAtChance,
    dead_unit_fractions,
    gradient_norms,
    gradient_summary,
)
from search.trial.evaluation import (
    classification_metrics,
    evaluate_test_set,
    expected_calibration_error,
    mc_dropout_model,
    mc_predict,
)
from search.trial.fit import FitResult, fit_config
from search.trial.graphs import released_graphs
from search.trial.history import save_history, summarize_epochs
from search.trial.lr_range import (
    LRFinding,
    find_learning_rate,
    plot_lr_curve,
    resolve_auto_lr,
    suggest,
    write_finding,
)
from search.trial.objective import make_objective, trial_config
from search.trial.worker import work, work_in_process

__all__ = [
    "ChanceDetector",
    "EpochRecorder",
    "FitResult",
    "LRFinding",
    "StuckAtChance",
    "TrialDiverged",
    "build_compiled",
    "classification_metrics",
    "dead_unit_fractions",
    "evaluate_test_set",
    "expected_calibration_error",
    "find_learning_rate",
    "fit_config",
    "gradient_norms",
    "gradient_summary",
    "loss_function",
    "make_objective",
    "mc_dropout_model",
    "mc_predict",
    "on_gpu",
    "plot_lr_curve",
    "preflight",
    "released_graphs",
    "resolve_auto_lr",
    "save_history",
    "suggest",
    "summarize_epochs",
    "trial_config",
    "use_gpu",
    "visible_gpus",
    "work",
    "work_in_process",
    "write_finding",
]
