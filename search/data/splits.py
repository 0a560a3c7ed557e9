"""Data sets as in-memory arrays: loaded once per process, split once, reused by trials.

``LOADERS`` maps ``dataset.name`` to a function ``(path, test_fraction, split_seed)`` that
returns the full training set and the test set. Validation comes out of the training set
with a fixed ``split_seed``; the test set is only used for the final evaluation of a
finished trial.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from omegaconf import DictConfig
from sklearn.model_selection import train_test_split

from search.cli.errors import DataError
from search.data.cifar10 import load_cifar10
from search.data.digits import load_digits

__all__ = ["LOADERS", "Splits", "load_splits", "splits_from_config"]

Loader = Callable[
    [str | None, float | None, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
]
LOADERS: dict[str, Loader] = {"cifar10": load_cifar10, "digits": load_digits}
T = TypeVar("T")


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
        path=_optional(dataset.path, str),
        val_fraction=float(dataset.val_fraction),
        test_fraction=_optional(dataset.test_fraction, float),
        split_seed=int(dataset.split_seed),
        image_size=_optional(dataset.image_size, int),
        channels=_optional(dataset.channels, int),
        train_limit=_optional(dataset.train_limit, int),
    )


def _optional(value: object, kind: Callable[[Any], T]) -> T | None:
    return None if value is None else kind(value)


@functools.lru_cache(maxsize=4)
def load_splits(
    name: str,
    path: str | None,
    val_fraction: float,
    test_fraction: float | None,
    split_seed: int,
    image_size: int | None = None,
    channels: int | None = None,
    train_limit: int | None = None,
) -> Splits:
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"dataset.val_fraction must be between 0 and 1, got {val_fraction}")
    if name not in LOADERS:
        raise DataError(f"unknown dataset '{name}'; use one of: {', '.join(LOADERS)}")
    x_full, y_full, x_test, y_test = LOADERS[name](path, test_fraction, split_seed)
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
