"""``python -m search.report study=<name> [vs=<other>] [by=<param>]``: a study's answer in HTML.

Reads everything from the Optuna study (nothing is trained) and writes ``<out>/report.html``:
one self-contained page (figures embedded as base64 PNGs, no scripts, no server) that
compares *arms*: the values of one param (``by=model.batch_norm``; a float param in quantile
bins), two studies (``vs=other``), or the whole study. Per arm: best and median validation
accuracy, epochs to 95 % of the arm's best, seconds per epoch, pruned / failed / stuck /
diverged counts and the best trial's test accuracy; then the figures, MC Dropout against the
deterministic model, the diagnostics against the result, and each arm's best configuration
with the command that re-trains it. ``arms.csv`` and ``figures/*.png`` sit next to the page;
the page (and the figures, under ``report/``) are logged to the study's MLflow parent run,
whose description links them.

The package: ``arms`` (the trials, their arms and the numbers), ``figures``, ``best`` (each
arm's best configuration and its re-train command), ``page`` (the answer and the HTML),
``command`` (make, write and log the report) and ``__main__`` (the Hydra entry point).
"""

from __future__ import annotations

from search.report.arms import (
    Arms,
    arm_table,
    best_row,
    build_arms,
    epochs_to_reach,
    mc_dropout_table,
    steady_epochs,
)
from search.report.best import BestConfig, best_configs, write_trial_config
from search.report.command import log_report, make_report, run_report, write_report
from search.report.figures import (
    plot_best_so_far,
    plot_diagnostics,
    plot_learning_curves,
    plot_mc_dropout,
    plot_param_importances,
    plot_per_arm,
)
from search.report.page import Report, answer, render_html

__all__ = [
    "Arms",
    "BestConfig",
    "Report",
    "answer",
    "arm_table",
    "best_configs",
    "best_row",
    "build_arms",
    "epochs_to_reach",
    "log_report",
    "make_report",
    "mc_dropout_table",
    "plot_best_so_far",
    "plot_diagnostics",
    "plot_learning_curves",
    "plot_mc_dropout",
    "plot_param_importances",
    "plot_per_arm",
    "render_html",
    "run_report",
    "steady_epochs",
    "write_report",
    "write_trial_config",
]
