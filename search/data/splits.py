"""What every trial trains on: ``Splits``, the interface the trial code reads (sizes,
shapes, probes, ``model.fit``'s inputs, test batches), and ``ArraySplits``, a data set held
in memory as arrays. ``search.data.images`` streams a folder through the same interface."""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["ArraySplits", "Splits"]


class Splits(Protocol):
    """Train / validation / test as the trial code reads them."""

    @property
    def name(self) -> str: ...

    @property
    def num_classes(self) -> int | None: ...  # None: a regression

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]: ...

    @property
    def n_train(self) -> int: ...

    @property
    def contents(self) -> str: ...  # a digest of the data: another file at the same path

    def sizes(self) -> str: ...

    def probe(self, part: str, n: int) -> tuple[np.ndarray, np.ndarray]: ...

    def fit_inputs(self, batch_size: int) -> dict[str, Any]: ...

    def training_batches(self, batch_size: int, seed: int) -> Iterator[tuple[Any, Any]]: ...

    def test_batches(self, batch_size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


@dataclass(frozen=True)
class ArraySplits:
    """Train / validation / test arrays; images as float32 in [0, 1], labels as int
    (``num_classes``), or float targets of a regression (``num_classes`` None)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @functools.cached_property
    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and variance of the flattened training images."""
        flat = self.x_train.reshape(len(self.x_train), -1)
        return flat.mean(axis=0), flat.var(axis=0)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @functools.cached_property
    def contents(self) -> str:
        """A digest of the six arrays (shapes, types and bytes)."""
        digest = hashlib.blake2b(digest_size=8)
        for array in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            digest.update(f"{array.shape}{array.dtype}".encode())
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()

    def sizes(self) -> str:
        return f"{len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test"

    def probe(self, part: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` examples of ``part`` (``train`` or ``val``), as arrays."""
        x, y = (self.x_train, self.y_train) if part == "train" else (self.x_val, self.y_val)
        return x[:n], y[:n]

    def fit_inputs(self, batch_size: int) -> dict[str, Any]:
        """The training and validation data as keyword arguments of ``model.fit``."""
        return {
            "x": self.x_train,
            "y": self.y_train,
            "batch_size": batch_size,
            "validation_data": (self.x_val, self.y_val),
        }

    def training_batches(
        self, batch_size: int, seed: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Shuffled training batches without end (the learning-rate range test wraps a
        small set around)."""
        order = np.random.default_rng(seed).permutation(len(self.x_train))
        for step in itertools.count():
            start = (step * batch_size) % len(order)
            batch = order[start : start + batch_size]
            yield self.x_train[batch], self.y_train[batch]

    def test_batches(self, batch_size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The test set in batches (images, labels)."""
        for i in range(0, len(self.x_test), batch_size):
            yield self.x_test[i : i + batch_size], self.y_test[i : i + batch_size]
