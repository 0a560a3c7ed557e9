"""Holes a second new user found after their own project worked (issue 13's contract, on
issue 14's features): a study file that is not one, a data file rewritten in place, a
broken image, a builder whose loss says another task than the config, a builder that only
a notebook knows, a searched key set on the command line. Each case failed before its fix.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import keras
import numpy as np
import optuna
import pytest
from omegaconf import DictConfig

from search.cli import DataError, HarnessError, command_line_problem
from search.config import parse_space
from search.config.references import OWN_BUILDERS, unimportable
from search.data import clear_loaded, splits_from_config
from search.models import BUILDERS, BuilderError, resolve_builder
from search.run import run_study
from tests.conftest import compose, tiny

MINE = """
import keras

def regression(input_shape, num_classes, units=4):
    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(1)])
    model.compile(loss=keras.losses.MeanSquaredError(), metrics=["mae"])
    return model

def with_auc(input_shape, num_classes, units=4):
    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                              keras.layers.Dense(num_classes, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=[keras.metrics.AUC()])
    return model
"""
SPACE = "space:\n  optimizer:\n    learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2}\n"


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder: ``mine.py`` and ``studies/study/``, the working directory."""
    (tmp_path / "mine.py").write_text(MINE, encoding="utf-8")
    (tmp_path / "studies" / "study").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("mine", None)
    clear_loaded()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("# @package _global_\noptimizer:\n  name: adam\n", "mine.yaml sets no model.builder; add"),
        (f"# @package _global_\n{SPACE}", "mine.yaml sets no model.builder"),
        ("model:\n  builder: dense\n", "its keys land under study.* instead of the top; make"),
        ("# mine\n# @package _global_\nmodel:\n  builder: dense\n", "it is on line 2: Hydra"),
        (
            "defaults:\n  - override /dataset: digits\nmodel:\n  builder: dense\n",
            "mine.yaml: its keys land under study.*",
        ),
    ],
)
def test_a_study_file_that_is_not_a_study_says_how_to_fix_it(
    project: Path, text: str, said: str
) -> None:
    (project / "studies" / "study" / "mine.yaml").write_text(text)
    problem = command_line_problem("run", ["study=mine"])
    assert problem is not None and "\n" not in problem
    assert said in problem
    assert str(project / "studies" / "study" / "mine.yaml") in problem  # the file to fix


def _npz(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    np.savez(path, x_train=rng.random((120, 6)).astype("float32"), y_train=np.arange(120) % 3)


def test_a_data_file_rewritten_in_place_is_a_changed_study(project: Path) -> None:
    data = project / "d.npz"
    _npz(data, seed=0)
    args = [*tiny(project / "mlruns", "train.epochs=1"), "dataset=npz", f"dataset.path={data}"]
    run_study(compose("study=deep_dnn", *args, "n_trials=1"))
    run_study(compose("study=deep_dnn", *args, "n_trials=2"))  # the same file: goes on
    _npz(data, seed=1)  # the same path, other numbers
    clear_loaded()
    with pytest.raises(HarnessError, match=r"dataset.contents: \w+ -> \w+ \(the data changed\)"):
        run_study(compose("study=deep_dnn", *args, "n_trials=3"))
    study = run_study(compose("study=deep_dnn", *args, "n_trials=3", "accept_changes=true"))
    assert [t.user_attrs["revision"] for t in study.trials] == [0, 0, 1]


def _pets(root: Path, per_class: int = 6) -> Path:
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.full((6, 6, 3), 40 if label == "cats" else 200, "uint8") + i
            keras.utils.save_img(root / label / f"{i}.png", pixels, scale=False)
    return root


def _images(folder: Path) -> object:
    clear_loaded()
    cfg = compose("study=deep_dnn", "dataset=images", f"dataset.path={folder}")
    return splits_from_config(cfg.dataset)


def test_an_image_folder_changes_its_digest_when_an_image_is_added(project: Path) -> None:
    folder = _pets(project / "pets")
    before = _images(folder).contents  # type: ignore[attr-defined]
    assert before == _images(folder).contents  # type: ignore[attr-defined]
    _pets(folder, per_class=7)  # one more image per class
    assert _images(folder).contents != before  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("payload", "said"),
    [(b"", "cannot decode"), (b"\x89PNG\r\n\x1a\n cut off", "cannot decode")],
)
def test_an_image_that_does_not_decode_is_named_before_a_trial(
    project: Path, payload: bytes, said: str
) -> None:
    folder = _pets(project / "pets")
    (folder / "dogs" / "broken.png").write_bytes(payload)
    with pytest.raises(DataError) as err:
        _images(folder)
    assert "\n" not in str(err.value)
    assert said in str(err.value) and str(folder / "dogs" / "broken.png") in str(err.value)
    assert "remove or replace the file" in str(err.value)


@pytest.mark.parametrize(
    ("builder", "said"),
    [
        (
            "mine:regression",
            "the builder compiles loss=mean_squared_error (a regression) but "
            "train.loss=sparse_categorical_crossentropy; set train.loss=mean_squared_error",
        ),
        # the labels do not fit the builder's own metric: its metrics are named, not ours
        ("mine:with_auc", "with loss sparse_categorical_crossentropy and metrics auc"),
    ],
)
def test_a_builder_compiled_for_another_task_is_refused(
    project: Path, builder: str, said: str
) -> None:
    cfg = compose("study=deep_dnn", *tiny(project / "mlruns"))
    with pytest.raises(HarnessError) as err:
        run_study(_own_model(cfg, builder))
    assert "\n" not in str(err.value)
    assert said in str(err.value)
    assert not (project / "mlruns" / "optuna.journal").exists()


def _own_model(cfg: DictConfig, builder: str) -> DictConfig:
    """deep_dnn's config with the model replaced by ``builder`` and its one argument."""
    cfg.model = {"builder": builder, "units": 4}
    del cfg.space["model"]
    return cfg


def test_a_builder_only_a_notebook_knows_is_named_so() -> None:
    with pytest.raises(BuilderError) as err:
        resolve_builder("__main__:build_cnn")
    assert "defined in a notebook or a script run as __main__" in str(err.value)
    assert "set model.builder: my_models:build_cnn" in str(err.value)
    assert "it has" not in str(err.value)  # not the command's own functions


def test_an_export_of_a_study_without_a_completed_trial_says_what_to_do() -> None:
    from search.export import _best_trial

    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    with pytest.raises(HarnessError, match="its 1 were pruned or failed: run python -m search"):
        _best_trial(study)


def test_an_emptied_space_section_searches_nothing_there() -> None:
    cfg = compose("study=deep_dnn", "~space.optimizer.learning_rate")  # leaves optimizer: {}
    assert cfg.space.optimizer == {}
    assert [s.name for s in parse_space(cfg.space)] == ["model.batch_norm", "model.dropout_rate"]


def test_a_name_only_the_users_code_registers_is_said_at_export() -> None:
    ours = {name for name, fn in BUILDERS.items() if fn.__module__.startswith("search.models")}
    assert set(OWN_BUILDERS) == ours  # the list export reads without importing Keras
    assert unimportable("dense") == ""
    assert "a name your code registers (register_builder)" in unimportable("my_cnn")


def test_a_searched_key_set_on_the_command_line_is_said_to_do_nothing(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = [*tiny(project / "mlruns"), "train.epochs=1"]
    run_study(compose("study=deep_dnn", *args, "n_trials=1"))
    with caplog.at_level(logging.WARNING, logger="search"):  # no effect: not a changed study
        study = run_study(compose("study=deep_dnn", *args, "n_trials=2",
                                  "optimizer.learning_rate=0.01"))  # fmt: skip
    assert [t.user_attrs["revision"] for t in study.trials] == [0, 0]
    said = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert said == [
        "note: optimizer.learning_rate=0.01 has no effect: the study searches "
        "optimizer.learning_rate; narrow space.optimizer.learning_rate instead, or stop "
        "searching it with ~space.optimizer.learning_rate"
    ]
