"""A study's best, for one objective or several.

A single-objective study has Optuna's ``best_trial``. A multi-objective one has a Pareto
front (``best_trials``: no other trial is at least as good on every objective and better
on one) and, for what needs one trial (the registry's ``champion``, ``best.yaml``, the
summary line), the trial best on its *first* objective, which is always on the front.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.study.names import Attr

__all__ = [
    "best_trial",
    "curve_of",
    "dominated",
    "first_target",
    "first_value",
    "is_multi",
    "maximizes",
    "pareto_numbers",
]


def is_multi(study: optuna.Study) -> bool:
    return len(study.directions) > 1


def maximizes(study: optuna.Study) -> bool:
    """The study's first objective is maximized."""
    return study.directions[0] == StudyDirection.MAXIMIZE


def first_value(trial: FrozenTrial) -> float | None:
    """The trial's value on the first objective (None when it has none: pruned, failed)."""
    return float(trial.values[0]) if trial.values else None


def first_target(trial: FrozenTrial) -> float:
    """Optuna plots' ``target`` for the first objective of a complete trial."""
    return float(trial.values[0]) if trial.values else float("nan")


def best_trial(study: optuna.Study) -> FrozenTrial:
    """Optuna's ``best_trial``; of a multi-objective study, the complete trial best on the
    first objective (ties: the lower number). ``ValueError`` when no trial completed."""
    if not is_multi(study):
        return study.best_trial
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values is not None
    ]
    if not done:
        raise ValueError(f"study {study.study_name} has no complete trial")
    sign = -1.0 if maximizes(study) else 1.0
    return min(done, key=lambda t: (sign * t.values[0], t.number))


def curve_of(trial: FrozenTrial) -> dict[int, float]:
    """The first objective per epoch (0-based): the values the trial reported to Optuna,
    or, in a multi-objective study (which takes no reports), its ``curve`` user attr."""
    if trial.intermediate_values:
        return dict(trial.intermediate_values)
    stored = trial.user_attrs.get(Attr.CURVE) or []
    return {epoch: float(v) for epoch, v in enumerate(stored) if v is not None}


def pareto_numbers(study: optuna.Study) -> list[int]:
    """The trial numbers on the Pareto front (of a single-objective study: its best)."""
    if not is_multi(study):
        try:
            return [study.best_trial.number]
        except ValueError:
            return []
    return sorted(t.number for t in study.best_trials)


def dominated(
    values: Sequence[float], others: Sequence[Sequence[float]], maximize: Sequence[bool]
) -> bool:
    """Some of ``others`` is at least as good as ``values`` on every objective and better
    on one."""
    signs = [1.0 if m else -1.0 for m in maximize]
    mine = [s * v for s, v in zip(signs, values, strict=True)]
    for other in others:
        theirs = [s * v for s, v in zip(signs, other, strict=True)]
        if all(t >= m for t, m in zip(theirs, mine, strict=True)) and theirs != mine:
            return True
    return False
