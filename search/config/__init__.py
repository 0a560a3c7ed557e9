"""The composed config and what is checked on it before anything is created: plain dicts
of config nodes (``compose``), value checks (``checks``), the declared search space and
how a trial's values land in the config (``space``), stepped floats on their decimals
(``steps``), what a study trains for and measures (``task``) and optimizes
(``objectives``: one, or several), references to a user's
functions (``references``), and exported configs as
``search.train`` reads them (``exported``)."""

from __future__ import annotations

from search.config.checks import (
    check_config,
    check_storage,
    check_study_name,
    check_tracking_uri,
    storage_identity,
)
from search.config.compose import as_dict, resolved_copy
from search.config.devices import DevicePlan, plan_devices
from search.config.exported import (
    apply_overrides,
    check_same_source,
    load_exported,
    with_defaults,
)
from search.config.references import unimportable
from search.config.space import (
    ParamSpec,
    apply_params,
    grid_search_space,
    parse_space,
    sample_params,
    validate_space_keys,
)
from search.config.task import CLASSIFICATION_LOSSES, Task, task_of

__all__ = [
    "CLASSIFICATION_LOSSES",
    "DevicePlan",
    "ParamSpec",
    "Task",
    "apply_overrides",
    "apply_params",
    "as_dict",
    "check_config",
    "check_same_source",
    "check_storage",
    "check_study_name",
    "check_tracking_uri",
    "grid_search_space",
    "load_exported",
    "parse_space",
    "plan_devices",
    "resolved_copy",
    "sample_params",
    "storage_identity",
    "task_of",
    "unimportable",
    "validate_space_keys",
    "with_defaults",
]
