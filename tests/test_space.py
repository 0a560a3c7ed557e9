"""The YAML space -> Optuna distributions function, table-driven."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from search.cli import SpaceError
from search.config import (
    apply_params,
    grid_search_space,
    parse_space,
    sample_params,
    validate_space_keys,
)
from search.study import make_sampler

VALID: list[tuple[dict[str, Any], str, Any]] = [
    (
        {"optimizer.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}},
        "optimizer.learning_rate",
        FloatDistribution(1e-5, 1e-1, log=True),
    ),
    (
        {"model": {"dropout_rate": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1}}},
        "model.dropout_rate",
        FloatDistribution(0.0, 0.5, step=0.1),
    ),
    (
        {"model.depth": {"type": "int", "low": 5, "high": 20, "step": 5}},
        "model.depth",
        IntDistribution(5, 20, step=5),
    ),
    (
        {"model.width": {"type": "int", "low": 16, "high": 256, "log": True}},
        "model.width",
        IntDistribution(16, 256, log=True),
    ),
    (
        {"model": {"batch_norm": {"type": "categorical", "choices": [False, True]}}},
        "model.batch_norm",
        CategoricalDistribution((False, True)),
    ),
    (
        {"optimizer": {"name": {"type": "categorical", "choices": ["sgd", "nadam"]}}},
        "optimizer.name",
        CategoricalDistribution(("sgd", "nadam")),
    ),
]


@pytest.mark.parametrize(("space", "name", "distribution"), VALID)
def test_parse_valid(space: dict[str, Any], name: str, distribution: Any) -> None:
    (spec,) = parse_space(space)
    assert spec.name == name
    assert spec.distribution == distribution


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"a": {"type": "float", "low": 1.0, "high": 0.1}}, "low (1.0) > high (0.1)"),
    ({"a": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "log scale needs low > 0"),
    ({"a": {"type": "float", "low": -1, "high": 1.0, "log": True}}, "log scale needs low > 0"),
    ({"a": {"type": "categorical", "choices": []}}, "non-empty list of choices"),
    ({"a": {"type": "categorical"}}, "non-empty list of choices"),
    ({"a": {"type": "uniform", "low": 0, "high": 1}}, "type must be float, int or categorical"),
    ({"a": {"type": "float", "low": "x", "high": 1}}, "numeric low and high"),
    ({"a": {"type": "float", "low": 0.1, "high": 1, "lgo": True}}, "unknown field(s) lgo"),
    ({"a": {"type": "int", "low": 0.5, "high": 3}}, "whole-number"),
    ({"a": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}}, "not both"),
    ({"a": {"type": "float", "low": 0.0, "high": 1, "step": 0}}, "step must be a positive"),
    ({"a": 0.5}, "expected a mapping"),
    # values that are not numbers, and choices of mixed types (issue 13)
    ({"a": {"type": "float", "low": float("nan"), "high": 1}}, "must be finite numbers"),
    ({"a": {"type": "float", "low": 0, "high": float("inf")}}, "must be finite numbers"),
    ({"a": {"type": "float", "low": float("-inf"), "high": 0}}, "must be finite numbers"),
    ({"a": {"type": "int", "low": 0, "high": float("inf")}}, "must be finite numbers"),
    ({"a": {"type": "float", "low": 0, "high": 1, "step": float("nan")}}, "step must be a"),
    ({"a": {"type": "float", "low": 0, "high": 1, "step": float("inf")}}, "step must be a"),
    ({"a": {"type": "float", "low": "1e-3", "high": 1}}, "write exponents with a dot"),
    ({"a": {"type": "float", "low": 0.1, "high": 1, "log": "yes"}}, "log must be true or false"),
    ({"a": {"type": "float", "low": 0, "high": 1, "step": 0.3}}, "step 0.3 does not divide"),
    ({"a": {"type": "categorical", "choices": [1, "a"]}}, "choices mix number and string"),
    ({"a": {"type": "categorical", "choices": [True, 1]}}, "choices mix bool and number"),
    ({"a": {"type": "categorical", "choices": ["x", False]}}, "choices mix bool and string"),
    ({"a": {"type": "categorical", "choices": [0.1, float("nan")]}}, "finite numbers"),
    ({"a": {"type": "categorical", "choices": [1, 1.0]}}, "choice 1.0 is listed twice"),
    ({"a": {"type": "categorical", "choices": ["x", "x"]}}, "choice 'x' is listed twice"),
    ({"a": {"type": "categorical", "choices": [[1], [2]]}}, "choices must be scalars"),
]

# one type per categorical: null may join any, ints and floats are numbers
MIXED_BUT_VALID = [[None, "l2"], [None, 0.5], [0, 0.25, 0.5], [False, True, None]]


@pytest.mark.parametrize("choices", MIXED_BUT_VALID)
def test_choices_of_one_type_with_null_are_valid(choices: list[Any]) -> None:
    (spec,) = parse_space({"a": {"type": "categorical", "choices": choices}})
    assert spec.distribution == CategoricalDistribution(tuple(choices))


@pytest.mark.parametrize(("space", "message"), INVALID)
def test_parse_invalid_names_the_key(space: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError) as err:
        parse_space(space)
    assert message in str(err.value)
    assert str(err.value).startswith("space.a")
    assert "\n" not in str(err.value)


CFG = OmegaConf.create(
    {
        "optimizer": {"name": "nadam", "learning_rate": 1e-3, "momentum": 0.0},
        "model": {"batch_norm": False, "dropout_rate": 0.0},
    }
)
CONDITIONAL = {
    "optimizer": {
        "name": {"type": "categorical", "choices": ["sgd", "nadam"]},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer.name": "sgd"}},
    }
}


def test_momentum_sampled_only_for_sgd() -> None:
    specs = parse_space(CONDITIONAL)
    sgd = optuna.trial.FixedTrial(
        {"optimizer.name": "sgd", "optimizer.learning_rate": 0.01, "optimizer.momentum": 0.9}
    )
    assert sample_params(sgd, specs, CFG) == {
        "optimizer.name": "sgd",
        "optimizer.learning_rate": 0.01,
        "optimizer.momentum": 0.9,
    }
    nadam = optuna.trial.FixedTrial({"optimizer.name": "nadam", "optimizer.learning_rate": 0.01})
    assert "optimizer.momentum" not in sample_params(nadam, specs, CFG)


def test_condition_reads_the_config_when_not_sampled() -> None:
    specs = parse_space({"optimizer.momentum": CONDITIONAL["optimizer"]["momentum"]})
    trial = optuna.trial.FixedTrial({"optimizer.momentum": 0.9})
    assert sample_params(trial, specs, CFG) == {}  # config says nadam
    sgd_cfg = OmegaConf.merge(CFG, {"optimizer": {"name": "sgd"}})
    assert sample_params(trial, specs, sgd_cfg) == {"optimizer.momentum": 0.9}


def test_conditional_params_in_a_real_study_respect_the_condition() -> None:
    specs = parse_space(CONDITIONAL)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        params = sample_params(trial, specs, CFG)
        assert ("optimizer.momentum" in params) == (params["optimizer.name"] == "sgd")
        study.tell(trial, 0.0)


def test_apply_params_sets_dotted_keys_on_a_copy() -> None:
    out = apply_params(CFG, {"optimizer.learning_rate": 0.05, "model.batch_norm": True})
    assert out.optimizer.learning_rate == 0.05 and out.model.batch_norm is True
    assert CFG.optimizer.learning_rate == 1e-3 and CFG.model.batch_norm is False


def test_keys_must_exist_in_the_config() -> None:
    validate_space_keys(parse_space(CONDITIONAL), CFG)
    bad = parse_space({"model.dropuot_rate": {"type": "float", "low": 0.0, "high": 0.5}})
    with pytest.raises(SpaceError, match="model.dropuot_rate' does not exist"):
        validate_space_keys(bad, CFG)
    bad_when = parse_space(
        {"optimizer.momentum": {"type": "float", "low": 0, "high": 1, "when": {"opt.name": "sgd"}}}
    )
    with pytest.raises(SpaceError, match="'opt.name' does not exist"):
        validate_space_keys(bad_when, CFG)


def test_grid_space_enumerates_steps_and_choices() -> None:
    specs = parse_space(
        {
            "model.dropout_rate": {"type": "float", "low": 0.0, "high": 0.4, "step": 0.2},
            "model.batch_norm": {"type": "categorical", "choices": [False, True]},
            "model.depth": {"type": "int", "low": 2, "high": 6, "step": 2},
        }
    )
    assert grid_search_space(specs) == {
        "model.dropout_rate": [0.0, 0.2, 0.4],
        "model.batch_norm": [False, True],
        "model.depth": [2, 4, 6],
    }
    with pytest.raises(SpaceError, match="sampler=grid needs"):
        grid_search_space(
            parse_space({"a": {"type": "float", "low": 1e-4, "high": 1, "log": True}})
        )


@pytest.mark.parametrize(
    ("low", "high", "step", "decimals"),
    [(0.0, 0.9, 0.1, 1), (0.05, 0.95, 0.15, 2), (0.0, 1.0, 0.05, 2), (1e-4, 1e-3, 1e-4, 4)],
)
@pytest.mark.parametrize("sampler", ["random", "tpe", "qmc"])
def test_stepped_floats_are_stored_on_their_step_decimals(
    low: float, high: float, step: float, decimals: int, sampler: str
) -> None:
    """0.1 * 3 is 0.30000000000000004 in floats: what Optuna stores (params, the trials
    table, the Optuna CLI) is rounded to the step's decimals, and on the step grid."""
    space = {"a": {"type": "float", "low": low, "high": high, "step": step}}
    specs = parse_space(space)
    cfg = OmegaConf.create({"a": 0.0, "seed": 0, "sampler": {"name": sampler}})
    study = optuna.create_study(sampler=make_sampler(cfg, specs, seed=0))
    for _ in range(30):
        trial = study.ask()
        value = sample_params(trial, specs, cfg)["a"]
        study.tell(trial, value)
    stored = [t.params["a"] for t in study.trials]
    assert all(repr(v) == repr(round(v, decimals)) for v in stored), stored
    assert all(abs((v - low) / step - round((v - low) / step)) < 1e-9 for v in stored)
    assert len(set(stored)) > 3  # it does search


def test_grid_values_are_on_the_step_decimals() -> None:
    specs = parse_space({"a": {"type": "float", "low": 0.0, "high": 0.9, "step": 0.1}})
    shown = [repr(v) for v in grid_search_space(specs)["a"]]
    assert shown == "0.0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9".split()


def test_null_parameters_are_not_searched() -> None:
    specs = parse_space(
        {
            "model": {"batch_norm": None, "dropout_rate": {"type": "float", "low": 0, "high": 1}},
            "optimizer.learning_rate": None,
        }
    )
    assert [spec.name for spec in specs] == ["model.dropout_rate"]
