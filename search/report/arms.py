"""The trials a report compares, grouped into arms, and the numbers of each arm.

An arm is a value of one param (a float param in quantile bins), a study, or both;
``arm_table`` and ``mc_dropout_table`` hold numbers only (``search.report.page`` formats
them). The helpers ``_col``, ``_get``, ``_float``, ``_num`` are shared with the package."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial

from search.cli.errors import HarnessError
from search.study.front import curve_of, maximizes
from search.study.names import Attr
from search.study.outcome import DIVERGED, STUCK_AT_CHANCE
from search.study.storage import ENDED
from search.tracking.summary import trials_frame

__all__ = [
    "Arms",
    "arm_table",
    "best_row",
    "build_arms",
    "epochs_to_reach",
    "mc_dropout_table",
    "steady_epochs",
]

_SCORED = ("COMPLETE", "PRUNED")  # states whose value counts as a result
_FRACTION = 0.95  # "epochs to 95 % of the best"
_BINS = 3  # quantile bins of a continuous param
_UNSET = "unset"  # a conditional param the trial did not sample


# --------------------------------------------------------------------------------------
# The trials and their arms


@dataclass(frozen=True)
class Arms:
    """The trials to compare (one row each, ``trials_frame`` columns plus ``study``,
    ``arm`` and ``curve``, the metric per epoch) and the arms in display order."""

    trials: pd.DataFrame
    order: list[str]
    key: str  # what an arm is: the ``by`` param, "study" (also for one arm), "study: <by>"
    metric: str
    maximize: bool
    objects: dict[tuple[str, int], FrozenTrial] = field(repr=False)

    @property
    def test_metric(self) -> str:
        """The test figure shown: ``test_<metric>`` (``test_mae``), else test accuracy/loss."""
        found = [f"test_{self.metric.removeprefix('val_')}", "test_accuracy", "test_loss"]
        return next((c for c in found if c in self.trials), "test_accuracy")

    def of(self, arm: str) -> pd.DataFrame:
        return self.trials[self.trials["arm"] == arm]

    def scored(self, arm: str | None = None) -> pd.DataFrame:
        """Complete and pruned trials with a value (all arms, or one)."""
        rows = self.trials if arm is None else self.of(arm)
        return rows[rows["state"].isin(_SCORED) & rows["value"].notna()]

    def trial(self, row: pd.Series) -> FrozenTrial:
        return self.objects[(str(row["study"]), int(row["number"]))]


def build_arms(
    studies: Sequence[optuna.Study], by: str | None, metric: str = "val_accuracy"
) -> Arms:
    """One arm per study (more than one study), per value of ``by``, or both; a single arm
    named after the study with neither."""
    frames, objects = [], {}
    for study in studies:
        trials = {t.number: t for t in study.get_trials(deepcopy=False, states=ENDED)}
        frame = trials_frame(study)
        frame = frame[frame["number"].isin(trials)].copy() if not frame.empty else frame
        if frame.empty or not (frame["state"].isin(_SCORED) & frame["value"].notna()).any():
            raise HarnessError(
                f"study {study.study_name} has no finished (complete or pruned) trials; "
                f"run python -m search.run study={study.study_name} first"
            )
        frame.insert(0, "study", study.study_name)
        frame.insert(1, "group", _groups(frame, study.study_name))
        frame["curve"] = [curve_of(trials[int(n)]) for n in frame["number"]]
        frames.append(frame)
        objects.update({(study.study_name, n): t for n, t in trials.items()})
    frame = pd.concat(frames, ignore_index=True)
    names = list(dict.fromkeys(frame["group"]))
    if by:
        labels, order = _param_arms(frame, by, _distribution(studies, by))
        if len(names) > 1:
            labels = [f"{s}: {label}" for s, label in zip(frame["group"], labels, strict=True)]
            order = [f"{s}: {label}" for s in names for label in order]
        key = f"study: {by}" if len(names) > 1 else by
    else:
        labels, order, key = list(frame["group"]), names, "study"
    frame["arm"] = labels
    order = [arm for arm in order if arm in set(labels)]
    maximize = maximizes(studies[0])  # of several objectives: the first
    return Arms(frame, order, key, metric, maximize, objects)


def _groups(frame: pd.DataFrame, study_name: str) -> list[str]:
    """The study's name for each trial; ``<name> r<k>`` when the study has trials of more
    than one revision (``search.study.revisions``): those are not compared as one arm."""
    column = frame.get(Attr.REVISION, pd.Series([0] * len(frame), index=frame.index))
    revisions = [int(r) if pd.notna(r) else 0 for r in column]
    if len(set(revisions)) < 2:
        return [study_name] * len(frame)
    return [f"{study_name} r{r}" for r in revisions]


def _distribution(studies: Sequence[optuna.Study], by: str) -> BaseDistribution:
    for study in studies:
        for trial in study.get_trials(deepcopy=False):
            if by in trial.distributions:
                return trial.distributions[by]
    known = sorted({p for s in studies for t in s.get_trials(deepcopy=False) for p in t.params})
    which = " or ".join(s.study_name for s in studies)
    raise HarnessError(
        f"by: '{by}' is not a param of study {which}; "
        f"its params: {', '.join(known) or 'none (nothing was searched)'}"
    )


def _param_arms(
    frame: pd.DataFrame, by: str, dist: BaseDistribution
) -> tuple[list[str], list[str]]:
    """Each trial's arm label for the param ``by`` and the labels in order: a categorical's
    choices, a few values each, or quantile bins of a continuous param."""
    column = frame.get(f"params_{by}", pd.Series([None] * len(frame), index=frame.index))
    present = column.notna()
    unset = [] if present.all() else [_UNSET]
    if isinstance(dist, CategoricalDistribution):
        order = [str(c) for c in dist.choices]
        return [str(v) if ok else _UNSET for v, ok in zip(column, present, strict=True)], [
            *order,
            *unset,
        ]
    log_scale = bool(getattr(dist, "log", False))
    values = column[present].astype(float)
    unique = sorted(values.unique())
    discrete = isinstance(dist, IntDistribution) or (
        isinstance(dist, FloatDistribution) and dist.step is not None
    )
    if len(unique) <= 4 or (discrete and len(unique) <= 6):
        label_of = {v: _num(v, log_scale) for v in unique}
        labels = [
            label_of[float(v)] if ok else _UNSET for v, ok in zip(column, present, strict=True)
        ]
        return labels, [label_of[v] for v in unique] + unset
    codes = pd.qcut(values, q=_BINS, labels=False, duplicates="drop")
    names = {
        int(code): f"{_num(values[codes == code].min(), log_scale)}"
        f"–{_num(values[codes == code].max(), log_scale)}"
        for code in sorted(codes.unique())
    }
    labels = [names[int(codes[i])] if ok else _UNSET for i, ok in present.items()]
    return labels, [names[c] for c in sorted(names)] + unset


def _num(value: float, log_scale: bool = False) -> str:
    value = float(value)
    if value != 0 and (log_scale or abs(value) < 1e-2 or abs(value) >= 1e4):
        return f"{value:.1e}"
    return f"{value:.3g}"


# --------------------------------------------------------------------------------------
# Numbers


def epochs_to_reach(curve: Mapping[int, float], target: float, maximize: bool = True) -> int | None:
    """Epochs (1-based: step + 1) until the metric first reaches ``target``; None if never."""
    for step in sorted(curve):
        value = curve[step]
        if value is not None and (value >= target if maximize else value <= target):
            return int(step) + 1
    return None


def _target(best: float, maximize: bool) -> float:
    return best * _FRACTION if maximize else best / _FRACTION


def best_row(arms: Arms, arm: str) -> pd.Series | None:
    """The arm's best trial: the best complete one (Optuna's notion), else the best pruned."""
    scored = arms.scored(arm)
    for states in (("COMPLETE",), _SCORED):
        rows = scored[scored["state"].isin(states)]
        if not rows.empty:
            index = rows["value"].idxmax() if arms.maximize else rows["value"].idxmin()
            return rows.loc[index]
    return None


def arm_table(arms: Arms) -> pd.DataFrame:
    """One row per arm (index: the arm label), numbers only (see ``_display`` for the page)."""
    scored_all = arms.scored()
    overall = scored_all["value"].max() if arms.maximize else scored_all["value"].min()
    rows = []
    for arm in arms.order:
        trials, scored = arms.of(arm), arms.scored(arm)
        best = scored["value"].max() if arms.maximize else scored["value"].min()
        curves = [c for c in trials["curve"] if c]
        own = [epochs_to_reach(c, _target(best, arms.maximize), arms.maximize) for c in curves]
        common = [
            epochs_to_reach(c, _target(overall, arms.maximize), arms.maximize) for c in curves
        ]
        top = best_row(arms, arm)
        diagnosis = trials.get(Attr.DIAGNOSIS, pd.Series(dtype=object))
        rows.append(
            {
                "arm": arm,
                "trials": len(trials),
                "complete": int((trials["state"] == "COMPLETE").sum()),
                "pruned": int((trials["state"] == "PRUNED").sum()),
                "failed": int((trials["state"] == "FAIL").sum()),
                STUCK_AT_CHANCE: int((diagnosis == STUCK_AT_CHANCE).sum()),
                DIVERGED: int((diagnosis == DIVERGED).sum()),
                "best_value": _float(best),
                "median_value": _float(scored["value"].median()),
                "epochs_to_95": _median([e for e in own if e is not None]),
                "reached_95": sum(e is not None for e in own),
                "epochs_to_95_overall": _median([e for e in common if e is not None]),
                "reached_95_overall": sum(e is not None for e in common),
                "with_curve": len(curves),
                "seconds_per_epoch": _float(
                    _col(steady_epochs(trials), "seconds_per_epoch").median()
                ),
                "best_study": str(top["study"]) if top is not None else "",
                "best_trial": int(top["number"]) if top is not None else -1,
                "best_trial_value": _float(top["value"]) if top is not None else math.nan,
                "test_value": _float(_get(top, arms.test_metric)),
            }
        )
    return pd.DataFrame(rows).set_index("arm")


def steady_epochs(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials whose ``seconds_per_epoch`` leaves out the first epoch's graph tracing
    (two epochs or more); all of them when none ran two."""
    steady = trials[_col(trials, "epochs_trained") >= 2]
    return steady if not steady.empty else trials


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return pd.to_numeric(frame[name], errors="coerce")
    return pd.Series([math.nan] * len(frame), index=frame.index, dtype=float)


def _get(row: pd.Series | None, name: str) -> Any:
    if row is None or name not in row.index:
        return math.nan
    return row[name]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else math.nan


def mc_dropout_table(arms: Arms, top_k: int) -> pd.DataFrame:
    """Deterministic against MC Dropout test figures of each arm's top-k trials that have
    them (empty when the study ran no MC Dropout)."""
    if "mc_test_accuracy" not in arms.trials:
        return pd.DataFrame()
    rows = []
    for arm in arms.order:
        have = arms.scored(arm)
        have = have[_col(have, "mc_test_accuracy").notna()]
        have = have.sort_values("value", ascending=not arms.maximize).head(top_k)
        for _, row in have.iterrows():
            names = [f"{mc}test_{n}" for n in ("accuracy", "nll", "ece") for mc in ("", "mc_")]
            figures = {name: _float(_get(row, name)) for name in [*names, "mc_predictive_entropy"]}
            rows.append({"arm": arm, "study": row["study"], "trial": row["number"],
                         "value": row["value"], **figures})  # fmt: skip
    return pd.DataFrame(rows)
