"""Warm starts: known configurations enqueued before the sampler takes over, from a YAML
list, an export or another study; refused in one line when they do not fit the space."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from search.cli import HarnessError
from search.config import parse_space
from search.study import warm_sets
from tests.conftest import client_in, compose, journal_path, run_cli, study_in, tiny

SPACE = {
    "optimizer": {"learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
    "model": {
        "batch_norm": {"type": "categorical", "choices": [True, False]},
        "dropout_rate": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    },
}


def _no_storage() -> optuna.storages.BaseStorage:
    raise AssertionError("a file source must not open the storage")


def _sets(tmp_path: Path, text: str) -> list[dict[str, object]]:
    path = tmp_path / "sets.yaml"
    path.write_text(text)
    return warm_sets(str(path), _no_storage, parse_space(SPACE), 5)


def test_a_yaml_list_nested_or_dotted_gives_its_sets(tmp_path: Path) -> None:
    sets = _sets(
        tmp_path,
        "- {optimizer.learning_rate: 0.01, model.batch_norm: true}\n"
        "- model:\n    dropout_rate: 0.3\n",
    )
    assert sets == [
        {"optimizer.learning_rate": 0.01, "model.batch_norm": True},
        {"model.dropout_rate": 0.3},
    ]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("- {optimizer.learning_rate: 5.0}\n", "optimizer.learning_rate=5.0, outside"),
        ("- {model.dropout_rate: 0.25}\n", "model.dropout_rate=0.25, outside"),  # off step
        ("- {model.batch_norm: 1}\n", "model.batch_norm=1, outside"),  # 1 is not true
        ("- {model.batch_norm: maybe}\n", "model.batch_norm='maybe', outside"),
        ("- {optimizer.lr: 0.01}\n", "sets optimizer.lr, which this study does not search"),
        ("- 0.01\n", "lists 0.01; each item is a mapping"),
        ("a: [unclosed\n", "is not YAML"),
    ],
)
def test_a_set_that_does_not_fit_is_named(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(HarnessError, match="warm_start: ") as caught:
        _sets(tmp_path, text)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def _study_with(
    values: list[float], params: list[dict[str, object]]
) -> Callable[[], optuna.storages.BaseStorage]:
    """A finished study of another space (a wider learning rate, a momentum key)."""
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="old", storage=storage, direction="maximize")
    wide = {
        "optimizer.learning_rate": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True),
        "model.batch_norm": optuna.distributions.CategoricalDistribution([True, False]),
        "optimizer.momentum": optuna.distributions.FloatDistribution(0.0, 1.0),
    }
    for value, p in zip(values, params, strict=True):
        dists = {k: wide[k] for k in p}
        study.add_trial(optuna.trial.create_trial(params=p, distributions=dists, value=value))
    return lambda: storage


def test_a_study_gives_its_top_k_trials_that_fit() -> None:
    fits = [{"optimizer.learning_rate": r, "model.batch_norm": True} for r in (0.001, 0.01, 0.05)]
    outside = {"optimizer.learning_rate": 0.5, "model.batch_norm": True}  # wider space then
    other_key = {"optimizer.momentum": 0.9}
    storage = _study_with([0.5, 0.9, 0.7, 0.99, 0.98], [*fits, outside, other_key])
    sets = warm_sets("old", storage, parse_space(SPACE), 2)
    assert sets == [fits[1], fits[2]]  # 0.9 and 0.7: the best two that fit
    with pytest.raises(HarnessError, match="neither a file nor a study .*studies there: old"):
        warm_sets("olb", storage, parse_space(SPACE), 2)
    narrow = parse_space({"optimizer": SPACE["optimizer"]})  # batch_norm not searched here
    with pytest.raises(HarnessError) as caught:
        warm_sets("old", storage, narrow, 2)
    said = str(caught.value)
    assert "no complete trial whose parameters fit this study's space (5 complete: its " in said
    assert "best, trial 3, sets optimizer.learning_rate=0.5, outside" in said  # why, in one line


def test_sets_beyond_n_trials_are_said_to_wait(workdir: Path) -> None:
    (workdir / "warm.yaml").write_text(
        "- {optimizer.learning_rate: 0.005}\n- {optimizer.learning_rate: 0.002}\n"
    )
    args = ["study=deep_dnn", "warm_start=warm.yaml", "n_trials=1", *tiny(workdir / "mlruns")]
    done = run_cli("search.run", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "2 of 2 configurations from warm.yaml enqueued; 1 wait for a larger n_trials" in (
        done.stdout
    )
    states = [t.state.name for t in study_in(workdir).trials]
    assert states[0] in ("COMPLETE", "PRUNED") and states[1] == "WAITING"


def test_run_starts_with_the_enqueued_sets_tags_them_and_does_not_repeat_them(
    workdir: Path,
) -> None:
    (workdir / "warm.yaml").write_text(
        "- {optimizer.learning_rate: 0.005, model.batch_norm: true, model.dropout_rate: 0.1}\n"
        "- {optimizer.learning_rate: 0.002, model.batch_norm: false}\n"
    )
    args = ["study=deep_dnn", "warm_start=warm.yaml", *tiny(workdir / "mlruns")]
    done = run_cli("search.run", *args, "n_trials=3", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "warm start: 2 of 2 configurations from warm.yaml enqueued" in done.stdout
    study = study_in(workdir)
    first, second, third = study.trials
    assert first.params == {
        "optimizer.learning_rate": 0.005,
        "model.batch_norm": True,
        "model.dropout_rate": 0.1,
    }
    assert second.params["optimizer.learning_rate"] == 0.002
    assert second.params["model.batch_norm"] is False  # dropout_rate: sampled
    assert first.user_attrs["warm_start"] == second.user_attrs["warm_start"] == "warm.yaml"
    assert "warm_start" not in third.user_attrs
    client = client_in(workdir)
    runs = {
        r.data.tags["optuna.trial_number"]: r
        for r in client.search_runs(
            [client.get_experiment_by_name("deep_dnn").experiment_id],  # type: ignore[union-attr]
            filter_string="tags.`search.role` = 'trial'",
        )
    }
    assert runs["0"].data.tags["search.warm_start"] == "warm.yaml"
    assert "search.warm_start" not in runs["2"].data.tags
    again = run_cli("search.run", *args, "n_trials=4", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert (
        "warm start: 0 of 2 configurations from warm.yaml enqueued (2 in the study already)"
        in again.stdout
    )
    assert len(study_in(workdir).trials) == 4


def test_a_bad_warm_start_creates_nothing(workdir: Path) -> None:
    (workdir / "bad.yaml").write_text("- {optimizer.learning_rate: 5.0}\n")
    done = run_cli(
        "search.run",
        "study=deep_dnn",
        "warm_start=bad.yaml",
        *tiny(workdir / "mlruns"),
        cwd=workdir,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: warm_start: bad.yaml sets optimizer.learning_rate=5.0, outside")
    assert not journal_path(workdir).exists()
    assert compose("warm_start=bad.yaml").warm_start_k == 5  # the documented default
