"""How a trial ended, and what that makes it: one table, one function.

Every way a trial can end has a name, and the name decides the rest (one ``try`` decides,
as in Optuna's own ``_run_trial``; nothing later parses an error message back):

=================  ==============================  ========  ========  ===============  =====
outcome            what ended it                   Optuna    MLflow    diagnosis        error
=================  ==============================  ========  ========  ===============  =====
returned           the objective returned a value  COMPLETE  FINISHED
pruned             ``optuna.TrialPruned``          PRUNED    FINISHED
stuck_at_chance    ``StuckAtChance``               PRUNED    FINISHED  stuck_at_chance
diverged           ``TrialDiverged``               PRUNED    FINISHED  diverged         yes
raised             any other ``Exception``         FAIL      FAILED                     yes
interrupted        Ctrl-C, SIGTERM                 FAIL      KILLED                     yes
orphaned           its worker died (``orphans``,   FAIL      KILLED                     yes
                   an RDB storage's stale
                   heartbeat)
=================  ==============================  ========  ========  ===============  =====

A trial the harness stops for what it saw (stuck at chance, diverged) is PRUNED, not
FAIL: the sampler learns from a pruned trial's last reported value but ignores failed
ones (TPE then kept proposing a diverging region). The diagnoses are ``TrialPruned``
subclasses (``Diagnosed``), so Optuna's own loops and ``FixedTrial`` see them pruned too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.study.names import Attr, Tag

__all__ = [
    "DIVERGED",
    "OUTCOMES",
    "STUCK_AT_CHANCE",
    "Diagnosed",
    "Outcome",
    "describe",
    "orphaned",
    "outcome_of",
    "recorded",
]


class Diagnosed(optuna.TrialPruned):
    """A fit the harness stopped for what it saw; the subclass names the diagnosis."""

    diagnosis: ClassVar[str] = ""


STUCK_AT_CHANCE, DIVERGED = "stuck_at_chance", "diverged"  # the diagnoses
_DIAGNOSES = (STUCK_AT_CHANCE, DIVERGED)
# name -> (Optuna state, MLflow run status, whether the error is recorded)
OUTCOMES: dict[str, tuple[TrialState, str, bool]] = {
    "returned": (TrialState.COMPLETE, "FINISHED", False),
    "pruned": (TrialState.PRUNED, "FINISHED", False),
    STUCK_AT_CHANCE: (TrialState.PRUNED, "FINISHED", False),
    DIVERGED: (TrialState.PRUNED, "FINISHED", True),
    "raised": (TrialState.FAIL, "FAILED", True),
    "interrupted": (TrialState.FAIL, "KILLED", True),
    "orphaned": (TrialState.FAIL, "KILLED", True),
}


@dataclass(frozen=True)
class Outcome:
    """A trial's end: its outcome name and what follows from it."""

    name: str
    error: str = ""  # "Type: message", kept where the outcome records it

    @property
    def state(self) -> TrialState:
        return OUTCOMES[self.name][0]

    @property
    def status(self) -> str:
        """The MLflow run status."""
        return OUTCOMES[self.name][1]

    @property
    def diagnosis(self) -> str:
        return self.name if self.name in _DIAGNOSES else ""

    @property
    def interrupted(self) -> bool:
        """The process is stopping: the worker ends after closing this trial."""
        return self.name == "interrupted"

    def user_attrs(self) -> dict[str, Any]:
        """What the Optuna trial records of its end."""
        attrs: dict[str, Any] = {Attr.OUTCOME: self.name}
        if self.diagnosis:
            attrs[Attr.DIAGNOSIS] = self.diagnosis
        if self.error:
            attrs[Attr.ERROR] = self.error
        return attrs

    def tags(self) -> dict[str, str]:
        """What the MLflow run records of its end (with its status)."""
        tags = {Tag.STATE: self.state.name}
        if self.diagnosis:
            tags[Tag.DIAGNOSIS] = self.diagnosis
        if self.error:
            tags[Tag.ERROR] = self.error
        return tags


def outcome_of(ending: BaseException | None) -> Outcome:
    """The outcome of a trial that returned (``None``) or raised ``ending``."""
    if ending is None:
        return Outcome("returned")
    if isinstance(ending, Diagnosed) and ending.diagnosis in _DIAGNOSES:
        name = ending.diagnosis
    elif isinstance(ending, optuna.TrialPruned):
        name = "pruned"
    elif isinstance(ending, Exception):
        name = "raised"
    else:  # KeyboardInterrupt (Ctrl-C, SIGTERM), SystemExit: the process is stopping
        name = "interrupted"
    return Outcome(name, describe(ending) if OUTCOMES[name][2] else "")


def orphaned(message: str) -> Outcome:
    """A RUNNING trial whose worker process is gone."""
    return Outcome("orphaned", message)


def recorded(trial: FrozenTrial) -> Outcome:
    """The outcome a finished trial recorded. Trials that recorded none were ended by
    Optuna (a stale heartbeat fails a dead worker's trial: orphaned) or by an earlier
    version of the harness."""
    attrs: Mapping[str, Any] = trial.user_attrs
    name = str(attrs.get(Attr.OUTCOME, ""))
    if name not in OUTCOMES:
        name = _by_state(trial, attrs)
    return Outcome(name, str(attrs.get(Attr.ERROR, "")) if OUTCOMES[name][2] else "")


def _by_state(trial: FrozenTrial, attrs: Mapping[str, Any]) -> str:
    if trial.state == TrialState.COMPLETE:
        return "returned"
    if trial.state == TrialState.PRUNED:
        diagnosis = str(attrs.get(Attr.DIAGNOSIS, ""))
        return diagnosis if diagnosis in _DIAGNOSES else "pruned"
    return "raised" if attrs.get(Attr.ERROR) and not attrs.get(Attr.ORPHANED) else "orphaned"


def describe(error: BaseException) -> str:
    """``Type: message`` (the type alone when there is no message), at most 5,000 chars."""
    text = str(error).strip()
    return (f"{type(error).__name__}: {text}" if text else type(error).__name__)[:5000]
