"""Data: the CIFAR-10 tarball reader on a generated tarball, digits splits, offline errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from search.cli import DataError
from search.data import clear_loaded, load_cifar10_tarball, load_splits
from tests.cifar_fixture import DIR, make_cifar_tarball, write_tar


def test_reads_the_standard_tarball(tmp_path: Path) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    x_train, y_train, x_test, y_test = make_cifar_tarball(path)
    (xa, ya), (xb, yb) = load_cifar10_tarball(path)
    assert xa.shape == (200, 32, 32, 3) and xa.dtype == np.uint8
    np.testing.assert_array_equal(xa, x_train)  # channel order and pixel layout preserved
    np.testing.assert_array_equal(ya, y_train)
    np.testing.assert_array_equal(xb, x_test)
    np.testing.assert_array_equal(yb, y_test)


def test_cifar_splits_scale_and_hold_out_validation(tmp_path: Path) -> None:
    path = tmp_path / "cifar-10-python.tar.gz"
    x_train, _, x_test, _ = make_cifar_tarball(path, seed=1)
    splits = load_splits("cifar10", str(path), val_fraction=0.1, test_fraction=None, split_seed=0)
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (180, 20, 50)
    assert splits.input_shape == (32, 32, 3) and splits.num_classes == 10
    assert splits.x_train.dtype == np.float32
    assert 0.0 <= splits.x_train.min() and splits.x_train.max() <= 1.0
    np.testing.assert_allclose(splits.x_test, x_test / 255.0, rtol=1e-6)  # test set untouched
    assert set(np.bincount(splits.y_val)) == {2}  # stratified: 2 per class


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({f"{DIR}/data_batch_1": b"x"}, r"is not a CIFAR-10 python tarball \(missing"),
        (
            {
                **{f"{DIR}/data_batch_{i}": pickle.dumps({b"nodata": 1}) for i in range(1, 6)},
                f"{DIR}/test_batch": pickle.dumps({b"nodata": 1}),
            },
            "is not a CIFAR-10 batch",
        ),
    ],
)
def test_rejects_tarballs_that_are_not_cifar(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    path = tmp_path / "bad.tar.gz"
    write_tar(path, members)
    with pytest.raises(DataError, match=message):
        load_cifar10_tarball(path)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_refuses_pickled_code_inside_the_tarball(tmp_path: Path) -> None:
    evil = pickle.dumps({b"data": _Evil(), b"labels": []})
    members = {f"{DIR}/data_batch_{i}": evil for i in range(1, 6)}
    members[f"{DIR}/test_batch"] = evil
    path = tmp_path / "evil.tar.gz"
    write_tar(path, members)
    with pytest.raises(DataError, match="refusing to load"):
        load_cifar10_tarball(path)


def test_missing_and_non_tar_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file at"):
        load_cifar10_tarball(tmp_path / "nope.tar.gz")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match="cannot read .* as a tar.gz archive"):
        load_cifar10_tarball(text)


def test_digits_splits_are_fixed_and_disjoint() -> None:
    a = load_splits("digits", None, val_fraction=0.2, test_fraction=0.2, split_seed=0)
    clear_loaded()
    b = load_splits("digits", None, val_fraction=0.2, test_fraction=0.2, split_seed=0)
    assert a is not b
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10
    train, val, test = ({row.tobytes() for row in x} for x in (a.x_train, a.x_val, a.x_test))
    assert len(train) + len(val) + len(test) == 1797  # digits has no duplicate images
    assert not (train & val) and not (train & test) and not (val & test)


def test_data_is_loaded_once_per_process() -> None:
    first = load_splits("digits", None, 0.2, 0.2, 0)
    assert load_splits("digits", None, 0.2, 0.2, 0) is first


def test_offline_download_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    def offline() -> None:
        raise Exception("URL fetch failure on https://example.invalid: None -- no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    clear_loaded()
    with pytest.raises(DataError) as err:
        load_splits("cifar10", None, 0.1, None, 0)
    assert "dataset.path=" in str(err.value) and "dataset=digits" in str(err.value)


def test_bad_fractions_and_names() -> None:
    with pytest.raises(DataError, match="val_fraction"):
        load_splits("digits", None, val_fraction=1.5, test_fraction=0.2, split_seed=0)
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_splits("mnist", None, 0.1, None, 0)
