"""Data sets as in-memory arrays: loaded once per process, split once, reused by trials.

``cifar10`` reads a local ``cifar-10-python.tar.gz`` (the standard pickled batches) when
``dataset.path`` is set, else uses the Keras loader (downloads once, cached under
``~/.keras/datasets``). ``digits`` is scikit-learn's bundled ``load_digits`` and works
offline. Validation comes out of the training set with a fixed ``split_seed``; the test
set is only used for the final evaluation of a finished trial.
"""

from __future__ import annotations

import functools
import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from sklearn.model_selection import train_test_split

from search.errors import DataError, first_line

__all__ = ["Splits", "load_cifar10_tarball", "load_splits", "splits_from_config"]

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"{CIFAR_DIR}/data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = f"{CIFAR_DIR}/test_batch"
DATASETS = ("cifar10", "digits")


@dataclass(frozen=True)
class Splits:
    """Train / validation / test arrays; images as float32 in [0, 1], labels as int."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @functools.cached_property
    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and variance of the flattened training images."""
        flat = self.x_train.reshape(len(self.x_train), -1)
        return flat.mean(axis=0), flat.var(axis=0)

    def sizes(self) -> str:
        return f"{len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test"


def splits_from_config(dataset: DictConfig) -> Splits:
    """Load (or reuse from this process's cache) the splits a ``dataset`` config names."""
    return load_splits(
        name=str(dataset.name),
        path=None if dataset.get("path") is None else str(dataset.path),
        val_fraction=float(dataset.val_fraction),
        test_fraction=float(dataset.get("test_fraction") or 0.0),
        split_seed=int(dataset.get("split_seed") or 0),
        image_size=None if dataset.get("image_size") is None else int(dataset.image_size),
        channels=None if dataset.get("channels") is None else int(dataset.channels),
        train_limit=None if dataset.get("train_limit") is None else int(dataset.train_limit),
    )


@functools.lru_cache(maxsize=4)
def load_splits(
    name: str,
    path: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    image_size: int | None = None,
    channels: int | None = None,
    train_limit: int | None = None,
) -> Splits:
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"dataset.val_fraction must be between 0 and 1, got {val_fraction}")
    if name == "cifar10":
        (x_full, y_full), (x_test, y_test) = _load_cifar10(path)
    elif name == "digits":
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"dataset.test_fraction must be between 0 and 1, got {test_fraction}")
        x_full, y_full, x_test, y_test = _load_digits(test_fraction, split_seed)
    else:
        raise DataError(f"unknown dataset '{name}'; use one of: {', '.join(DATASETS)}")
    x_full, x_test = (_reshape(x, image_size, channels) for x in (x_full, x_test))
    x_train, x_val, y_train, y_val = train_test_split(
        x_full, y_full, test_size=val_fraction, random_state=split_seed, stratify=y_full
    )
    if train_limit is not None:
        if train_limit < 1:
            raise DataError(f"dataset.train_limit must be a positive number, got {train_limit}")
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    return Splits(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=int(max(y_full.max(), y_test.max()) + 1),
    )


def _reshape(images: np.ndarray, size: int | None, channels: int | None) -> np.ndarray:
    """Resize (bilinear) to ``size`` x ``size`` and/or repeat a grey channel to RGB."""
    if channels is not None and images.shape[-1] != channels:
        if images.shape[-1] != 1 or channels != 3:
            raise DataError(f"dataset.channels: cannot turn {images.shape[-1]} into {channels}")
        images = np.repeat(images, 3, axis=-1)
    if size is not None and images.shape[1:3] != (size, size):
        if size < 1:
            raise DataError(f"dataset.image_size must be a positive number, got {size}")
        import keras

        images = keras.ops.convert_to_numpy(keras.ops.image.resize(images, (size, size)))
    return images.astype("float32")


def _load_digits(
    test_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., np.newaxis]
    y = digits.target.astype("int64")
    x_full, x_test, y_full, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=split_seed, stratify=y
    )
    return x_full, y_full, x_test, y_test


def _load_cifar10(path: str | None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    if path is not None:
        (x_train, y_train), (x_test, y_test) = load_cifar10_tarball(path)
    else:
        (x_train, y_train), (x_test, y_test) = _download_cifar10()
    return (
        (_scale(x_train), y_train.reshape(-1).astype("int64")),
        (_scale(x_test), y_test.reshape(-1).astype("int64")),
    )


def _scale(images: np.ndarray) -> np.ndarray:
    return (images.astype("float32") / 255.0).reshape(images.shape)


def _download_cifar10() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    import keras

    try:
        return keras.datasets.cifar10.load_data()  # type: ignore[no-any-return]
    except Exception as exc:  # offline, proxy, partial download: all mean the same here
        raise DataError(
            f"cannot download CIFAR-10 ({first_line(exc, 240)}); put cifar-10-python.tar.gz "
            "somewhere and pass dataset.path=/path/to/cifar-10-python.tar.gz, "
            "or use dataset=digits"
        ) from None


def load_cifar10_tarball(path: str | Path) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Read the standard ``cifar-10-python.tar.gz``: five training batches and a test batch.

    Returns uint8 images of shape (N, 32, 32, 3) and int labels, like the Keras loader.
    Only members with the expected names are unpickled, with an unpickler that accepts
    nothing but the NumPy arrays a CIFAR batch holds.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        where = f"{path} is a directory, not a file" if path.is_dir() else f"no file at {path}"
        raise DataError(f"dataset.path: {where}; give the path of cifar-10-python.tar.gz")
    tar = _open_tarball(path)
    try:
        with tar:
            names = set(tar.getnames())
            missing = [m for m in (*CIFAR_TRAIN, CIFAR_TEST) if m not in names]
            if missing:
                raise DataError(
                    f"dataset.path: {path} is not a CIFAR-10 python tarball "
                    f"(missing {missing[0]}); "
                    "download cifar-10-python.tar.gz from the CIFAR-10 page"
                )
            train = [_read_batch(tar, member) for member in CIFAR_TRAIN]
            test = _read_batch(tar, CIFAR_TEST)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"dataset.path: cannot read {path} as a tar.gz archive ({first_line(exc)}); "
            "it may be truncated: download cifar-10-python.tar.gz again"
        ) from None
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return (x_train, y_train), test


def _open_tarball(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except tarfile.ReadError:
        raise DataError(
            f"dataset.path: cannot read {path} as a tar.gz archive (not a gzip, bzip2, xz or "
            "plain tar file); give the path of cifar-10-python.tar.gz"
        ) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"dataset.path: cannot read {path} ({first_line(exc)})") from None


def _read_batch(tar: tarfile.TarFile, member: str) -> tuple[np.ndarray, np.ndarray]:
    handle = tar.extractfile(member)
    if handle is None:
        raise DataError(f"dataset.path: {member} in the tarball is not a file")
    try:
        batch = _BatchUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype="uint8")
        labels = np.asarray(batch[b"labels"], dtype="int64")
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as exc:
        why = f"no {exc} entry" if isinstance(exc, KeyError) else first_line(exc)
        raise DataError(f"dataset.path: {member} is not a CIFAR-10 batch ({why})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(
            f"dataset.path: {member} has data of shape {data.shape}, expected (N, 3072)"
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and NumPy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
