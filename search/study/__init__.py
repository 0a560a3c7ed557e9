"""The Optuna side of a search, with no Keras in it: where the study lives (``storage``),
its sampler and pruner (``samplers``), the trial loop (``loop``) and worker processes
(``pool``), trials of dead workers (``orphans``), the progress line (``progress``), what a
trial's end makes it (``outcome``), what a study measures and its revisions
(``revisions``), the names written on trials and runs (``names``) and a
trial as an exported config (``exports``), and known configurations run first
(``warm_start``), and a study's best of one objective or its Pareto front of several
(``front``).
The Optuna internals it needs are in ``_optuna``."""

from __future__ import annotations

from search.study.exports import trial_export
from search.study.front import (
    best_trial,
    dominated,
    first_value,
    is_multi,
    maximizes,
    pareto_numbers,
)
from search.study.loop import Callback, Objective, StopRule, grid_done, run_trials, settle_heap
from search.study.names import Attr, Role, Tag
from search.study.orphans import mark_worker, reap_orphans, worker_alive, worker_id
from search.study.outcome import (
    DIVERGED,
    OUTCOMES,
    STUCK_AT_CHANCE,
    Diagnosed,
    Outcome,
    describe,
    orphaned,
    outcome_of,
    recorded,
)
from search.study.pool import WorkerEnd, WorkerTarget, run_pool, threads_per_worker
from search.study.progress import FailureGuard, ProgressLine
from search.study.revisions import (
    measured,
    recorded_metric,
    recorded_metrics,
    revision_of,
    settle_revision,
)
from search.study.samplers import (
    check_sampling,
    make_pruner,
    make_sampler,
    pruning_off,
    sampler_seed,
    use_sampler,
)
from search.study.storage import (
    ENDED,
    FINISHED,
    check_readable,
    count_finished,
    load_existing_study,
    open_storage,
    open_study,
)
from search.study.warm_start import enqueue_warm_start, warm_sets

__all__ = [
    "best_trial",
    "dominated",
    "enqueue_warm_start",
    "first_value",
    "is_multi",
    "maximizes",
    "pareto_numbers",
    "pruning_off",
    "warm_sets",
    "DIVERGED",
    "ENDED",
    "FINISHED",
    "OUTCOMES",
    "STUCK_AT_CHANCE",
    "Attr",
    "Callback",
    "Diagnosed",
    "FailureGuard",
    "Objective",
    "Outcome",
    "ProgressLine",
    "Role",
    "StopRule",
    "Tag",
    "WorkerEnd",
    "WorkerTarget",
    "check_readable",
    "check_sampling",
    "count_finished",
    "describe",
    "load_existing_study",
    "make_pruner",
    "make_sampler",
    "mark_worker",
    "open_storage",
    "open_study",
    "orphaned",
    "outcome_of",
    "reap_orphans",
    "recorded",
    "grid_done",
    "measured",
    "recorded_metric",
    "recorded_metrics",
    "revision_of",
    "run_pool",
    "settle_revision",
    "run_trials",
    "sampler_seed",
    "settle_heap",
    "threads_per_worker",
    "trial_export",
    "use_sampler",
    "worker_alive",
    "worker_id",
]
