"""The names the harness writes: user attrs on an Optuna trial, tags on an MLflow run.

Plain strings in three namespaces (not enums: they go to storages and drivers as is).

Other tools read them (an MLflow filter such as ``tags.diagnosis = 'stuck_at_chance'``, the
Optuna dashboard's user-attr column), so they are spelled once, here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["Attr", "Role", "Tag"]


class Attr:
    """User attrs of an Optuna trial."""

    CONFIG: Final = "config"  # the trial's full resolved config (what export writes)
    METRICS: Final = "metrics"  # the final metrics, one dict (one storage write)
    CURVE: Final = "curve"  # several objectives: the first one per epoch (no reports then)
    MLFLOW_RUN_ID: Final = "mlflow_run_id"
    WARM_START: Final = "warm_start"  # an enqueued trial: where its parameters came from
    MODEL_ID: Final = "mlflow_model_id"  # its model kept in MLflow (tracking.log_models)
    OUTCOME: Final = "outcome"  # how the trial ended: an ``search.study.outcome`` name
    DIAGNOSIS: Final = "diagnosis"  # stuck_at_chance, diverged
    ERROR: Final = "error"  # "Type: message" of what ended it
    WORKER: Final = "worker"  # host:pid:start of the process that ran it
    ORPHANED: Final = "orphaned"  # True: its worker died and a later run failed it
    LR_FIND_SECONDS: Final = "lr_find_seconds"
    REVISION: Final = "revision"  # the study revision it ran under (``search.study.revisions``)
    REVISIONS: Final = "revisions"  # a study's user attr: each revision's measured config


class Tag:
    """Tags of an MLflow run (besides MLflow's own ``mlflow.*``)."""

    ROLE: Final = "search.role"  # a ``Role``
    STUDY: Final = "optuna.study_name"
    TRIAL: Final = "optuna.trial_number"
    STATE: Final = "optuna.state"  # the trial's Optuna state (RUNNING until it ends)
    DIAGNOSIS: Final = "diagnosis"
    ERROR: Final = "error"
    REVISION: Final = "revision"  # the study revision the trial ran under
    BACKFILLED: Final = "search.backfilled"  # made from the Optuna trial (search.tracking.sync)
    RETRAIN_OF: Final = "search.retrain_of"  # a re-train: the MLflow run id of its trial
    SOURCE_TRIAL: Final = "search.source_trial"  # a re-train: its trial's number
    WARM_START: Final = "search.warm_start"  # an enqueued trial: its parameters' source
    VALUE: Final = "search.value"  # a registered model version: the value its trial scored
    BEST_TRIAL: Final = "best_trial"  # the parent run: the study's best trial number
    BEST_RUN_ID: Final = "best_mlflow_run_id"  # the parent run: that trial's MLflow run
    BEST_PARAM: Final = "best."  # the parent run: prefix of the best trial's params
    PARETO_TRIALS: Final = "pareto_trials"  # the parent run, several objectives: the front
    PARETO: Final = "search.pareto"  # a trial's run, several objectives: on the front or not


class Role:
    """What an MLflow run is (the ``search.role`` tag)."""

    STUDY: Final = "study"  # the study's parent run
    TRIAL: Final = "trial"
    RETRAIN: Final = "retrain"
    LR_FIND: Final = "lr_find"
