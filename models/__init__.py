"""Model builders: plain functions from typed arguments to a keras.Model.

Nothing here knows about Optuna or MLflow. ``registry`` finds the function a study's
``model.builder`` names: a name registered with ``@register_builder`` (``dense``,
``transfer``, or a user's) or ``module:function``; the other ``model.*`` keys are its
keyword arguments. Installed as ``search.models`` (a user's own ``models`` module stays
theirs).
"""

from __future__ import annotations

from search.models.dense import build_dense_net
from search.models.optimizers import OPTIMIZERS, make_optimizer
from search.models.registry import (
    BUILDERS,
    BuilderError,
    build_model,
    import_object,
    reference_of,
    register_builder,
    resolve_builder,
)
from search.models.transfer import build_transfer_net

__all__ = [
    "BUILDERS",
    "OPTIMIZERS",
    "BuilderError",
    "build_dense_net",
    "build_model",
    "build_transfer_net",
    "import_object",
    "make_optimizer",
    "reference_of",
    "register_builder",
    "resolve_builder",
]
