"""A user's own builder and data (issue 14): ``model.builder`` by name or ``module:function``,
``dataset=npz | loader | images | keras``, and what each says when the user's file or
function is wrong. In-process, on data of a few dozen rows."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from search.cli import DataError
from search.data import clear_loaded, splits_from_config
from search.models import BUILDERS, BuilderError, build_model, register_builder, resolve_builder
from tests.conftest import compose

MINE = """
import keras

def build(input_shape, num_classes, units=8):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes, activation="softmax")])

def compiled(input_shape, num_classes):
    model = build(input_shape, num_classes)
    model.compile(loss="sparse_categorical_crossentropy",
                  metrics=["sparse_top_k_categorical_accuracy"])
    return model

def broken(input_shape, num_classes):
    raise RuntimeError("no GPU here")

def not_a_model(input_shape, num_classes):
    return [1, 2]

def positional_only(input_shape, /, num_classes):
    return build(input_shape, num_classes)

def loader(n=40):
    import numpy as np
    rng = np.random.default_rng(0)
    train = rng.random((n, 3)).astype("float32"), np.arange(n) % 2
    return train, (rng.random((10, 3)), np.arange(10) % 2)

def raising_loader():
    raise OSError("the share is not mounted")

NOT_CALLABLE = 3
"""


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder with their module ``mine.py`` (imported from the working directory)."""
    (tmp_path / "mine.py").write_text(MINE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("mine", None)
    clear_loaded()


def test_a_builder_is_a_registered_name_or_module_function(project: Path) -> None:
    assert resolve_builder("dense") is BUILDERS["dense"]
    model = build_model("mine:build", (4, 4, 1), 3, units=4)
    assert isinstance(model, keras.Model) and model.output_shape == (None, 3)

    @register_builder("tiny_test_net")
    def tiny_net(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
        return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(num_classes)])

    assert resolve_builder("tiny_test_net") is tiny_net
    register_builder("tiny_test_net")(tiny_net)  # a notebook cell run twice: the same one
    with pytest.raises(BuilderError, match="already registered"):
        register_builder("dense")(tiny_net)
    del BUILDERS["tiny_test_net"]


BAD_BUILDERS: list[tuple[str, dict[str, Any], str]] = [
    ("cnn", {}, r"unknown model.builder 'cnn'; use a registered name \(dense, transfer"),
    ("nomodule:build", {}, r"no module 'nomodule' in .* run from the folder that holds"),
    ("mine:nothing", {}, r"module mine has no 'nothing' \(it has .*build"),
    ("mine:NOT_CALLABLE", {}, "is of type int, not a function"),
    ("mine:broken", {}, "model.builder mine:broken raised RuntimeError: no GPU here"),
    ("mine:not_a_model", {}, "returned list, not a keras.Model"),
    ("mine:build", {"filters": 3}, r"model.filters is not an argument of the builder mine:build"),
    ("mine:positional_only", {}, "must take input_shape as a keyword"),
    (":build", {}, "is not module:function"),
]


@pytest.mark.parametrize(("builder", "keys", "said"), BAD_BUILDERS)
def test_a_builder_that_cannot_be_used_says_why(
    project: Path, builder: str, keys: dict[str, Any], said: str
) -> None:
    with pytest.raises(BuilderError, match=said):
        build_model(builder, (4, 4, 1), 3, **keys)


def test_a_module_that_fails_to_import_is_named(project: Path) -> None:
    (project / "halfway.py").write_text("import not_installed_anywhere\n", encoding="utf-8")
    with pytest.raises(BuilderError, match="importing halfway failed .*not_installed_anywhere"):
        build_model("halfway:build", (4,), 2)


def test_a_model_the_builder_compiled_keeps_its_loss_and_metrics(project: Path) -> None:
    from search.data import ArraySplits
    from search.trial import build_compiled

    cfg = compose("study=deep_dnn", "dataset=digits", "~model", "+model.builder=mine:compiled")
    x, y = np.zeros((6, 4, 4, 1), "float32"), np.arange(6) % 3
    splits = ArraySplits("t", x, y, x, y, x, y, num_classes=3)
    model = build_compiled(cfg, splits)
    logged = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"sparse_top_k_categorical_accuracy", "accuracy"} <= set(logged)
    assert isinstance(model.optimizer, keras.optimizers.Nadam)  # the config's optimizer


def _npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 4, 4, 1)).astype("float32")


def _splits(*overrides: str, classification: bool = True) -> Any:
    clear_loaded()
    return splits_from_config(compose("study=deep_dnn", *overrides).dataset, classification)


def test_npz_parts_missing_from_the_file_are_split_off(project: Path) -> None:
    path = _npz(project / "d.npz", x_train=_images(60), y_train=np.arange(60) % 3)
    splits = _splits("dataset=npz", f"dataset.path={path}")
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (38, 10, 12)
    assert splits.num_classes == 3 and splits.input_shape == (4, 4, 1)
    own = _npz(
        project / "e.npz",
        x_train=(_images(30) * 255).astype("uint8"),
        y_train=np.arange(30) % 3,
        x_test=_images(9),
        y_test=np.arange(9) % 3,
    )
    splits = _splits("dataset=npz", f"dataset.path={own}")
    assert len(splits.x_test) == 9 and len(splits.x_train) + len(splits.x_val) == 30
    assert splits.x_train.max() <= 1.0  # uint8 images scaled


def _bad_npz(project: Path, case: str) -> Path:
    path = project / f"{case}.npz"
    x, y = _images(20), np.arange(20) % 2
    if case == "truncated":
        _npz(path, x_train=x, y_train=y)
        path.write_bytes(path.read_bytes()[:200])
    elif case == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif case == "wrong_keys":
        _npz(path, images=x, labels=y)
    elif case == "lengths":
        _npz(path, x_train=x, y_train=y[:5])
    elif case == "nan":
        x[3, 0, 0, 0] = np.nan
        _npz(path, x_train=x, y_train=y)
    elif case == "negative":
        _npz(path, x_train=x, y_train=y - 1)
    elif case == "fractions":
        _npz(path, x_train=x, y_train=y + 0.5)
    elif case == "one_hot":
        _npz(path, x_train=x, y_train=np.eye(2)[y])
    elif case == "x_without_y":
        _npz(path, x_train=x, y_train=y, x_test=x)
    elif case == "objects":
        np.savez(path, x_train=np.array([{"a": 1}] * 20, dtype=object), y_train=y)
    return path


NPZ_PROBLEMS = [
    ("missing", "dataset.path: no file"),
    ("truncated", "cannot read .* as a .npz archive"),
    ("garbage", r"garbage.npz is not a .npz archive; make one with numpy.savez\(path, x_train"),
    ("wrong_keys", "unknown arrays images, labels; use x_train, y_train"),
    ("lengths", "20 inputs but 5 labels"),
    ("nan", "1 example holds NaN or inf values"),
    ("negative", "a label is -1; class numbers start at 0"),
    ("fractions", "not class numbers .* set train.loss=mse"),
    ("one_hot", "not one-hot rows: use y.argmax"),
    ("x_without_y", "x_test without y_test"),
    ("objects", "object arrays are refused"),
]


@pytest.mark.parametrize(("case", "said"), NPZ_PROBLEMS)
def test_a_broken_npz_is_one_line_naming_it(project: Path, case: str, said: str) -> None:
    path = project / "missing.npz" if case == "missing" else _bad_npz(project, case)
    with pytest.raises(DataError, match=said) as err:
        _splits("dataset=npz", f"dataset.path={path}")
    assert "\n" not in str(err.value)


def test_a_key_the_data_set_does_not_use_is_refused(project: Path) -> None:
    with pytest.raises(
        DataError, match=r"dataset.path is not used by dataset=digits .*dataset=npz"
    ):
        _splits("dataset=digits", "+dataset.path=my.npz")


def test_a_loader_function_gives_the_arrays(project: Path) -> None:
    splits = _splits("dataset=loader", "dataset.loader=mine:loader", "+dataset.args.n=50")
    assert len(splits.x_train) + len(splits.x_val) == 50 and len(splits.x_test) == 10
    with pytest.raises(DataError, match="dataset.loader mine:raising_loader raised OSError"):
        _splits("dataset=loader", "dataset.loader=mine:raising_loader")
    with pytest.raises(DataError, match="dataset.loader mine:build raised TypeError"):
        _splits("dataset=loader", "dataset.loader=mine:build")


def test_a_regression_keeps_float_targets(project: Path) -> None:
    splits = _splits("dataset=diabetes", classification=False)
    assert splits.num_classes is None and splits.y_train.dtype == np.float32
    assert splits.input_shape == (10,) and len(splits.x_test) == 89


def test_keras_sets_offline_say_what_to_do(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**kwargs: object) -> None:
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match="offline, give dataset.path=/path/to/mnist.npz"):
        _splits("dataset=keras", "dataset.name=mnist")
    with pytest.raises(DataError, match="reads only its own download cache"):
        _splits("dataset=keras", "dataset.name=cifar100", "dataset.path=x")
    with pytest.raises(DataError, match="'svhn' is not in keras.datasets"):
        _splits("dataset=keras", "dataset.name=svhn")


def _image_folder(root: Path, per_class: int = 12) -> Path:
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((6, 6, 3), 40 if label == "cats" else 200, "uint8") + i
            keras.utils.save_img(root / label / f"{i}.png", pixels, scale=False)
    return root


def test_an_image_folder_is_streamed_with_fixed_held_out_parts(project: Path) -> None:
    folder = _image_folder(project / "pets")
    splits = _splits("dataset=images", f"dataset.path={folder}", "dataset.image_size=8")
    assert splits.num_classes == 2 and splits.input_shape == (8, 8, 3)
    assert splits.sizes().startswith("17 train / 4 val / 3 test")
    first = np.concatenate([y for _, y in splits.test_batches(2)])
    again = np.concatenate([y for _, y in splits.test_batches(5)])
    np.testing.assert_array_equal(first, again)  # the same test set on every pass
    x, y = splits.probe("train", 4)
    assert x.shape == (4, 8, 8, 3) and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(splits.probe("train", 4)[1], y)
    fit = splits.fit_inputs(batch_size=5)
    assert sum(len(b[1]) for b in fit["x"]) == 17


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda root: root / "nowhere", "nowhere does not exist"),
        (lambda root: (root / "f").write_bytes(b"x") and root / "f", "a file, not a folder"),
        (lambda root: (root / "one" / "cats").mkdir(parents=True) or root / "one", "1 class"),
    ],
)
def test_an_image_folder_that_cannot_be_used_says_why(
    project: Path, make: Callable[[Path], Path], said: str
) -> None:
    with pytest.raises(DataError, match=said):
        _splits("dataset=images", f"dataset.path={make(project)}")


def test_another_data_file_is_another_config_a_moved_copy_is_not() -> None:
    """Continuing a study on another .npz file is a change (what the trials measure); a
    CIFAR-10 tarball moved elsewhere is not; the keys this issue added, at their old
    behaviour, do not make a study recorded before them look changed."""
    from search.study.revisions import changes, measured

    def flat(*overrides: str) -> dict[str, Any]:
        return measured(compose("study=deep_dnn", *overrides))

    one, other = (
        flat("dataset=npz", "dataset.path=a.npz"),
        flat("dataset=npz", "dataset.path=b.npz"),
    )
    assert changes(one, other) == ["dataset.path: a.npz -> b.npz"]
    here, there = flat("dataset=cifar10", "dataset.path=/a/c.tar.gz"), flat("dataset=cifar10")
    assert changes(here, there) == []
    now = flat("dataset=digits")
    recorded = {
        k: v for k, v in now.items() if k not in ("train.loss", "train.metrics", "dataset.kind")
    }
    assert changes({**recorded, "dataset.path": None}, now) == []
    assert changes(recorded, flat("dataset=digits", "train.loss=mse", "metric=val_mae",
                                  "direction=minimize"))[0].startswith("direction")  # fmt: skip
