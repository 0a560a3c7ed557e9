"""Hyperparameter search and experiment tracking for Keras: Optuna studies, MLflow runs.

The modules on this level are the commands (``python -m search.<command>``): ``run`` (run or
continue a study), ``export`` (best config + trials table), ``train`` (re-train an exported
config), ``sync`` (MLflow brought up to date with the study), ``ui`` (the MLflow UI),
``lr_find`` (the learning-rate range test) and ``report`` (a study's answer in HTML). The
machinery is in subpackages, each importing only those before it: ``cli``, ``config``,
``data``, ``study`` (Optuna), ``tracking`` (MLflow), ``trial`` (Keras).
"""

from __future__ import annotations

import os

# Before anything imports TensorFlow: no C++ start-up chatter, and oneDNN's custom ops off
# unless the user sets TF_ENABLE_ONEDNN_OPTS=1 (no faster on these nets, measured by
# benchmarks/fit_speed.py; they sum floats in another order, so a run re-trains bit for bit
# only under the same setting).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# MLflow's HTTP client retries 7 times with doubling back-off (minutes) when a tracking
# server is down; the harness retries on its own with a bounded back-off and goes on
# without MLflow (search.sync back-fills), so each request gives up after seconds.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
# no progress bar on stdout for each kept model's files (export's best.keras)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# The Python API (search.api), imported when first used: ``import search`` stays light.
_API = ("HarnessError", "export_study", "run_study", "train_exported", "trials_frame")


def __getattr__(name: str) -> object:
    if name in _API:
        from search import api

        return getattr(api, name)
    if name == "register_builder":
        from search.models import register_builder

        return register_builder
    raise AttributeError(f"module 'search' has no attribute {name!r}")
