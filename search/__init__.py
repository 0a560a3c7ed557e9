"""Hyperparameter search and experiment tracking for Keras: Optuna studies, MLflow runs.

Entry points: ``python -m search.run`` (run or continue a study), ``search.export``
(best config + trials table), ``search.train`` (re-train an exported config).
"""

from __future__ import annotations

import os

# Before anything imports TensorFlow: no C++ start-up chatter, and oneDNN's custom ops off
# unless the user sets TF_ENABLE_ONEDNN_OPTS=1 (they reorder floating-point sums, which
# breaks "same seed, same machine, same result" for a re-train; no faster on these nets).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
