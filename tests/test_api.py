"""The Python API (issue 14): ``search.run_study`` and friends called many times in one
process, as a notebook kernel does, with nothing left over between calls."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import keras
import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

import search
from search.trial.traces import TRACED

TINY = ["dataset=digits", "model.depth=2", "model.width=8", "train.epochs=1", "n_trials=2"]
CELL = ["dataset=digits", "train.epochs=1", "n_trials=2"]  # no keys of the study's builder


def build_small(input_shape: tuple[int, ...], num_classes: int, units: int = 8) -> keras.Model:
    """A builder as a notebook cell defines it."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def test_calls_in_one_process_leave_nothing_behind(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    handler = signal.getsignal(signal.SIGINT)
    study = search.run_study("deep_dnn", overrides=TINY)
    assert len(study.trials) == 2
    assert not GlobalHydra.instance().is_initialized() and not HydraConfig.initialized()
    assert signal.getsignal(signal.SIGINT) is handler  # the kernel's Ctrl-C is its own again
    assert len(TRACED) == 0  # the compiled models its trials kept went with the call
    more = search.run_study("deep_dnn", overrides=[*TINY[:-1], "n_trials=3"])  # continues
    assert len(more.trials) == 3
    frame = search.trials_frame("deep_dnn")
    assert list(frame["number"]) == [0, 1, 2] and frame["mlflow_run_id"].notna().all()
    assert {"state", "value", "params_optimizer.learning_rate"} <= set(frame.columns)
    best = search.export_study("deep_dnn", overrides=["dataset=digits"])
    result = search.train_exported(best)
    assert result.value == pytest.approx(more.best_value, rel=1e-4)
    with pytest.raises(search.HarnessError, match="unknown study 'nope'; available"):
        search.run_study("nope")
    with pytest.raises(search.HarnessError, match="unknown config key 'n_trails'.*n_trials"):
        search.run_study("deep_dnn", overrides=["n_trails=3"])


def test_a_builder_from_a_notebook_cell(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A callable replaces the study's model (its model keys and model space left out); the
    export keeps its reference and says plainly that ``search.train`` cannot import a
    function defined in ``__main__``-like places (here: inside a test module it can)."""
    monkeypatch.chdir(workdir)
    study = search.run_study(
        "deep_dnn",
        overrides=[*CELL, "study_name=cell", "+model.units=4"],
        builder=build_small,
    )
    config = study.best_trial.user_attrs["config"]
    assert config["model"] == {"builder": "tests.test_api:build_small", "units": 4}
    assert "space.model" not in str(study.best_trial.params)

    def inner(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        return build_small(input_shape, num_classes)

    search.run_study("deep_dnn", overrides=[*CELL, "study_name=inner"], builder=inner)
    with caplog.at_level(logging.WARNING, logger="search"):
        search.export_study("deep_dnn", overrides=["study_name=inner", "out=exports/inner"])
    assert "cannot be imported by search.train (it is defined inside a function)" in caplog.text
