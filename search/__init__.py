"""Hyperparameter search and experiment tracking for Keras: Optuna studies, MLflow runs.

Entry points: ``python -m search.run`` (run or continue a study), ``search.export``
(best config + trials table), ``search.train`` (re-train an exported config).
"""

from __future__ import annotations

import os

# Quiet TensorFlow's C++ start-up chatter before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
