"""Trace once per architecture (``search.trial.traces``): a trial that trains on a kept
model of its structure trains bit for bit as it would alone; other structures, custom
layers and the bounds keep models apart; a re-train of such a trial reproduces it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import optuna
import pandas as pd
import pytest
import yaml

from search.data import splits_from_config
from search.trial import EpochRecorder, FitResult, fit_config
from search.trial.traces import TRACED, TracedModels, structure_key
from tests.conftest import client_in, compose, journal_path, run_cli, tiny


@pytest.fixture(autouse=True)
def _no_kept_models() -> Iterator[None]:
    TRACED.clear()
    yield
    TRACED.clear()


def _fit(tmp_path: Path, *overrides: str) -> FitResult:
    cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", "train.epochs=3", *overrides))
    return fit_config(cfg, splits_from_config(cfg.dataset), EpochRecorder())


SAME_STRUCTURE = [  # (first trial, second trial): only the seed and the learning rate differ
    pytest.param(("seed=1",), ("seed=2", "optimizer.learning_rate=0.004"), id="elu"),
    pytest.param(
        ("seed=1", "model.dropout_rate=0.2"),
        ("seed=5", "model.dropout_rate=0.2", "optimizer.learning_rate=0.01"),
        id="dropout",  # its seed generators' states come from the trial's seed
    ),
    pytest.param(
        ("seed=1", "model.batch_norm=true"),
        ("seed=3", "model.batch_norm=true", "optimizer.learning_rate=0.02"),
        id="batch_norm",  # the moving statistics start afresh
    ),
    pytest.param(
        ("optimizer.name=sgd", "optimizer.momentum=0.9"),
        ("seed=4", "optimizer.name=sgd", "optimizer.momentum=0.9"),
        id="sgd_momentum",
    ),
]


@pytest.mark.parametrize(("first", "second"), SAME_STRUCTURE)
def test_a_trial_on_a_kept_model_trains_as_it_would_alone(
    tmp_path: Path, first: tuple[str, ...], second: tuple[str, ...]
) -> None:
    _fit(tmp_path, *first)  # the structure seen: nothing kept yet
    assert len(TRACED) == 0
    before = _fit(tmp_path, *first, "seed=11")  # seen again: its model kept
    reused = _fit(tmp_path, *second)
    assert reused.model is before.model and reused.metrics["reused_traces"] == 1.0
    assert before.metrics["reused_traces"] == 0.0
    TRACED.clear()
    alone = _fit(tmp_path, *second)
    assert alone.model is not before.model and alone.metrics["reused_traces"] == 0.0
    columns = ["loss", "val_loss", "val_accuracy", "accuracy"]
    pd.testing.assert_frame_equal(reused.history[columns], alone.history[columns], rtol=0, atol=0)
    assert reused.value == alone.value
    assert reused.metrics["test_accuracy"] == alone.metrics["test_accuracy"]


class _PrunedAfterOneEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        raise optuna.TrialPruned()


def test_a_trial_after_one_pruned_mid_fit_trains_as_it_would_alone(tmp_path: Path) -> None:
    cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", "train.epochs=3"))
    _fit(tmp_path)  # seen once: the pruned trial's model is kept
    with pytest.raises(optuna.TrialPruned):  # the kept model is left mid-training
        fit_config(cfg, splits_from_config(cfg.dataset), EpochRecorder(), [_PrunedAfterOneEpoch()])
    second = ("seed=7", "train.batch_size=48", "optimizer.learning_rate=0.003")
    reused = _fit(tmp_path, *second)
    assert reused.metrics["reused_traces"] == 1.0
    TRACED.clear()
    alone = _fit(tmp_path, *second)
    columns = ["loss", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(reused.history[columns], alone.history[columns], rtol=0, atol=0)


ANOTHER_STRUCTURE = [
    pytest.param(("model.dropout_rate=0.3",), id="dropout_rate"),
    pytest.param(("model.batch_norm=true",), id="batch_norm"),
    pytest.param(("model.width=17",), id="width"),
    pytest.param(("optimizer.name=adam",), id="optimizer"),
    pytest.param(("train.steps_per_execution=2",), id="steps_per_execution"),
    pytest.param(("model.activation=relu",), id="activation"),
]


@pytest.mark.parametrize("second", ANOTHER_STRUCTURE)
def test_another_structure_trains_on_a_model_of_its_own(
    tmp_path: Path, second: tuple[str, ...]
) -> None:
    _fit(tmp_path)
    before = _fit(tmp_path, "seed=3")  # kept
    assert len(TRACED) == 1
    other_key = structure_key(_fresh(tmp_path, *second))
    assert other_key is not None and other_key != structure_key(_fresh(tmp_path))
    after = _fit(tmp_path, *second)
    assert after.model is not before.model and after.metrics["reused_traces"] == 0.0


def test_none_kept_builds_every_trial_afresh(tmp_path: Path) -> None:
    _fit(tmp_path)
    before = _fit(tmp_path, "seed=2")
    assert len(TRACED) == 1
    after = _fit(tmp_path, "train.traced_models=0", "seed=9")
    assert after.model is not before.model and after.metrics["reused_traces"] == 0.0
    assert len(TRACED) == 0  # those kept went too


def _fresh(tmp_path: Path, *overrides: str) -> keras.Model:
    from search.trial import build_compiled

    cfg = compose("study=deep_dnn", *tiny(tmp_path / "mlruns", *overrides))
    return build_compiled(cfg, splits_from_config(cfg.dataset))


@keras.saving.register_keras_serializable(package="tests")
class Doubling(keras.layers.Layer):
    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        return inputs * 2.0


def _scaled_mse(scale: float) -> Callable[[Any, Any], Any]:
    def loss(y: Any, p: Any) -> Any:
        return scale * keras.losses.mean_squared_error(y, p)

    return loss


def _elu_times(alpha: float) -> Callable[[Any], Any]:
    def activation(x: Any) -> Any:
        return keras.activations.elu(x, alpha)

    return activation


def _doubled() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(Doubling()(inputs)))
    model.compile(optimizer="adam", loss="mse")
    return model


def _own_loss() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="adam", loss=_scaled_mse(100.0))
    return model


def _own_activation() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation=_elu_times(0.9))(inputs))
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("make", [_doubled, _own_loss, _own_activation])
def test_a_model_with_a_part_of_its_own_is_never_kept(make: Callable[[], keras.Model]) -> None:
    """A closure over a scale is serialized by its name alone: two scales would share."""
    kept = TracedModels()
    assert structure_key(make()) is None
    for _ in range(3):
        model = make()
        assert kept.take(model) is model and len(kept) == 0


def _dense(units: int) -> keras.Model:
    keras.backend.clear_session()  # as every trial starts: layer names count from the start
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(units)(inputs))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_a_structure_is_kept_when_it_comes_back_and_reused_after() -> None:
    kept = TracedModels()
    first = _dense(4)
    assert kept.take(first) is first and len(kept) == 0  # once: may never come back
    second = _dense(4)
    assert kept.take(second) is second and len(kept) == 1
    assert kept.take(_dense(4)) is second and kept.reused == 1


def test_kept_models_are_bounded_by_count_and_parameters() -> None:
    kept = TracedModels(max_models=2)
    for units in (1, 2, 3, 1, 2, 3):
        kept.take(_dense(units))
    assert len(kept) == 2
    kept.take(_dense(3))
    assert kept.reused == 1  # a kept one
    kept.take(_dense(1))
    assert kept.reused == 1  # the first went
    small = TracedModels(max_params=30)  # 8x1+1 = 9, 8x2+2 = 18, 8x3+3 = 27 parameters
    for units in (1, 2, 3, 1, 2, 3):
        small.take(_dense(units))
    assert len(small) == 1  # the last is kept even alone over the bound


def test_a_retrain_of_a_trial_that_reused_traces_reproduces_it(workdir: Path) -> None:
    args = tiny(workdir / "mlruns", "n_trials=3", "~space.model", "pruner=none", "pack=1")
    done = run_cli("search.run", "study=deep_dnn", *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(
        study_name="deep_dnn",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal_path(workdir)))
        ),
    )
    reused = [t.user_attrs["metrics"]["reused_traces"] for t in study.trials]
    assert reused == [0.0, 0.0, 1.0]  # one structure: kept when it came back, then reused
    out = workdir / "exported"
    store = f"mlruns_dir={workdir / 'mlruns'}"
    export = run_cli("search.export", "study=deep_dnn", "trial=2", f"out={out}", store, cwd=workdir)
    assert export.returncode == 0, export.stderr
    exported = yaml.safe_load((out / "trial_2.yaml").read_text())
    assert exported["source"]["trial_number"] == 2
    retrain = run_cli("search.train", f"from={out / 'trial_2.yaml'}", cwd=workdir)
    assert retrain.returncode == 0, retrain.stderr
    client = client_in(workdir)
    experiment = client.get_experiment_by_name("deep_dnn")
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.role` = 'retrain'"
    )
    assert run.data.metrics["best_val_accuracy"] == study.trials[2].value
    trial_run = study.trials[2].user_attrs["mlflow_run_id"]
    curves = [
        [m.value for m in client.get_metric_history(run_id, "val_loss")]
        for run_id in (trial_run, run.info.run_id)
    ]
    assert len(curves[0]) == 2 and curves[0] == curves[1]  # epoch by epoch, to the bit
