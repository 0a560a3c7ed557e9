"""The one outcome mapping: how a trial ended -> Optuna state, diagnosis, MLflow status, tags."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.cli import Terminated
from search.study import Attr, Outcome, Tag, orphaned, outcome_of, recorded
from search.trial import StuckAtChance, TrialDiverged

CASES = [
    # ending, name, state, status, diagnosis, error recorded
    (None, "returned", TrialState.COMPLETE, "FINISHED", "", ""),
    (optuna.TrialPruned("median"), "pruned", TrialState.PRUNED, "FINISHED", "", ""),
    (
        StuckAtChance("stuck"),
        "stuck_at_chance",
        TrialState.PRUNED,
        "FINISHED",
        "stuck_at_chance",
        "",
    ),
    (
        TrialDiverged("loss became nan at epoch 2"),
        "diverged",
        TrialState.PRUNED,
        "FINISHED",
        "diverged",
        "TrialDiverged: loss became nan at epoch 2",
    ),
    (
        ValueError("bad activation"),
        "raised",
        TrialState.FAIL,
        "FAILED",
        "",
        "ValueError: bad activation",
    ),
    (KeyboardInterrupt(), "interrupted", TrialState.FAIL, "KILLED", "", "KeyboardInterrupt"),
    (Terminated(), "interrupted", TrialState.FAIL, "KILLED", "", "Terminated"),
]


@pytest.mark.parametrize(("ending", "name", "state", "status", "diagnosis", "error"), CASES)
def test_each_ending_has_one_state_status_and_tags(
    ending: BaseException | None,
    name: str,
    state: TrialState,
    status: str,
    diagnosis: str,
    error: str,
) -> None:
    outcome = outcome_of(ending)
    assert (outcome.name, outcome.state, outcome.status) == (name, state, status)
    assert outcome.diagnosis == diagnosis and outcome.error == error
    assert outcome.interrupted == (name == "interrupted")
    expected_tags = {Tag.STATE: state.name}
    expected_attrs: dict[str, object] = {Attr.OUTCOME: name}
    if diagnosis:
        expected_tags[Tag.DIAGNOSIS] = expected_attrs[Attr.DIAGNOSIS] = diagnosis
    if error:
        expected_tags[Tag.ERROR] = expected_attrs[Attr.ERROR] = error
    assert outcome.tags() == expected_tags
    assert outcome.user_attrs() == expected_attrs


def test_diagnoses_are_pruned_trials_for_optuna_itself() -> None:
    """Optuna's own loop (and FixedTrial users) see a diagnosis as a pruned trial."""
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        trial.report(0.1, step=0)
        raise StuckAtChance("stuck at chance for 3 epochs")

    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.PRUNED


def test_a_finished_trial_gives_back_the_outcome_it_recorded() -> None:
    study = optuna.create_study()
    for ending in (
        None,
        StuckAtChance("s"),
        TrialDiverged("d"),
        ValueError("v"),
        KeyboardInterrupt(),
    ):
        outcome = outcome_of(ending)
        trial = study.ask()
        for key, value in outcome.user_attrs().items():
            trial.set_user_attr(key, value)
        if outcome.state == TrialState.COMPLETE:
            study.tell(trial, 0.5)
        else:
            trial.report(0.1, step=0)
            study.tell(trial, state=outcome.state)
    assert [recorded(t) for t in study.trials] == [
        outcome_of(e)
        for e in (
            None,
            StuckAtChance("s"),
            TrialDiverged("d"),
            ValueError("v"),
            KeyboardInterrupt(),
        )
    ]


def test_trials_that_recorded_no_outcome() -> None:
    """Optuna failed it (a stale heartbeat) or an earlier harness ran it: by state and attrs."""
    study = optuna.create_study()
    stale = study.ask()
    study.tell(stale, state=TrialState.FAIL)  # as fail_stale_trials does: no attrs
    raised = study.ask()
    raised.set_user_attr(Attr.ERROR, "ValueError: boom")
    study.tell(raised, state=TrialState.FAIL)
    stuck = study.ask()
    stuck.set_user_attr(Attr.DIAGNOSIS, "stuck_at_chance")
    stuck.report(0.1, step=0)
    study.tell(stuck, state=TrialState.PRUNED)
    names = [recorded(t).name for t in study.trials]
    assert names == ["orphaned", "raised", "stuck_at_chance"]
    assert recorded(study.trials[0]).status == "KILLED"
    assert recorded(study.trials[1]) == Outcome("raised", "ValueError: boom")


def test_an_orphaned_trial_is_killed_with_its_reason() -> None:
    outcome = orphaned("worker host:123 died during the trial (killed?)")
    assert (outcome.state, outcome.status) == (TrialState.FAIL, "KILLED")
    assert outcome.tags()[Tag.ERROR] == "worker host:123 died during the trial (killed?)"
