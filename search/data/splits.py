"""Data sets as in-memory arrays: loaded once per process, split once, reused by trials.

``SOURCES`` maps a data set's ``dataset.kind`` (its group option: ``cifar10``, ``digits``,
``diabetes``, ``npz``, ``keras``, ``loader``) to its loader and the ``dataset.*`` keys it
uses: a key set to a value that the chosen set does not use is an error, not ignored.
A loader returns the set's own parts (``Raw``); what is missing is split off the
training set with a fixed ``split_seed``: the test set (``test_fraction``), then
validation (``val_fraction``). The test set is only used for the final evaluation of a
finished trial.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split

from search.cli.errors import DataError
from search.config.task import task_of
from search.data.bundled import load_diabetes, load_digits
from search.data.cifar10 import load_cifar10
from search.data.files import load_npz, load_with_function
from search.data.keras_sets import load_keras_set
from search.data.raw import Raw, checked_inputs, checked_labels

__all__ = ["SOURCES", "Splits", "clear_loaded", "load_splits", "splits_from_config", "splits_of"]

Loader = Callable[[Mapping[str, Any]], Raw]
_COMMON = {"name", "kind", "val_fraction", "split_seed", "train_limit"}
_IMAGES = {"image_size", "channels"}
SOURCES: dict[str, tuple[Loader, set[str]]] = {
    "cifar10": (load_cifar10, _COMMON | _IMAGES | {"path"}),
    "digits": (load_digits, _COMMON | _IMAGES | {"test_fraction"}),
    "diabetes": (load_diabetes, _COMMON | {"test_fraction"}),
    "npz": (load_npz, _COMMON | _IMAGES | {"path", "test_fraction"}),
    "keras": (load_keras_set, _COMMON | _IMAGES | {"path"}),
    "loader": (load_with_function, _COMMON | _IMAGES | {"loader", "args", "test_fraction"}),
}


@dataclass(frozen=True)
class Splits:
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

    def test_batches(self, batch_size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The test set in batches (images, labels)."""
        for i in range(0, len(self.x_test), batch_size):
            yield self.x_test[i : i + batch_size], self.y_test[i : i + batch_size]


def splits_of(cfg: DictConfig) -> Splits:
    """The splits of a whole config: its ``dataset``, read as its task needs (a regression
    loss: float targets)."""
    return splits_from_config(cfg.dataset, task_of(cfg).classification)


def splits_from_config(dataset: DictConfig, classification: bool = True) -> Splits:
    """Load (or reuse from this process's cache) the splits a ``dataset`` config names;
    ``classification=False`` (a regression loss): float targets, no stratified splits."""
    settings = OmegaConf.to_container(dataset, resolve=True)
    assert isinstance(settings, dict)
    frozen = tuple(sorted((str(k), _hashable(v)) for k, v in settings.items()))
    return _load(frozen, classification)


def _hashable(value: object) -> object:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def load_splits(
    name: str,
    path: str | None = None,
    val_fraction: float = 0.2,
    test_fraction: float | None = None,
    split_seed: int = 0,
    image_size: int | None = None,
    channels: int | None = None,
    train_limit: int | None = None,
    classification: bool = True,
) -> Splits:
    """The splits of a built-in data set by name (``search.data.SOURCES``), for scripts."""
    keys = SOURCES[name][1] if name in SOURCES else _COMMON
    given = {
        "name": name, "path": path, "val_fraction": val_fraction,
        "test_fraction": test_fraction, "split_seed": split_seed, "image_size": image_size,
        "channels": channels, "train_limit": train_limit,
    }  # fmt: skip
    frozen = tuple(sorted((k, v) for k, v in given.items() if k in keys or v is not None))
    return _load(frozen, classification)


def clear_loaded() -> None:
    """Forget the splits this process loaded (a file changed on disk)."""
    _load.cache_clear()


@functools.lru_cache(maxsize=4)
def _load(frozen: tuple[tuple[str, Any], ...], classification: bool) -> Splits:
    settings = dict(frozen)
    kind = str(settings.get("kind") or settings.get("name"))
    if kind not in SOURCES:
        raise DataError(f"unknown dataset '{kind}'; use one of: {', '.join(SOURCES)}")
    loader, keys = SOURCES[kind]
    unused = sorted(k for k, v in settings.items() if k not in keys and v is not None)
    if unused:
        hint = " (your own arrays: dataset=npz dataset.path=FILE)" if "path" in unused else ""
        raise DataError(
            f"dataset.{unused[0]} is not used by dataset={kind} (it uses "
            f"{', '.join(sorted(keys - {'name', 'kind'}))}); remove it{hint}"
        )
    val_fraction = _fraction(settings.get("val_fraction"), "val_fraction")
    raw = loader(settings)
    where = f"dataset={kind}" + (f" ({settings['path']})" if settings.get("path") else "")
    parts = {
        part: _checked(x, y, f"{where} {part}", classification)
        for part, (x, y) in raw.parts().items()
    }
    parts = {part: (_reshape(x, settings), y) for part, (x, y) in parts.items()}
    seed = int(settings.get("split_seed") or 0)
    if "test" not in parts:
        fraction = _fraction(settings.get("test_fraction"), "test_fraction")
        parts["train"], parts["test"] = _split(*parts["train"], fraction, seed, classification)
    if "val" not in parts:
        parts["train"], parts["val"] = _split(*parts["train"], val_fraction, seed, classification)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        parts[p] for p in ("train", "val", "test")
    )
    limit = settings.get("train_limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise DataError(f"dataset.train_limit must be a positive number, got {limit}")
        x_train, y_train = x_train[:limit], y_train[:limit]
    shapes = {x.shape[1:] for x in (x_train, x_val, x_test)}
    if len(shapes) > 1:
        raise DataError(f"{where}: train, validation and test inputs differ in shape {shapes}")
    return Splits(
        name=str(settings.get("name") or kind),
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=_classes(y_train, y_val, y_test) if classification else None,
    )


def _checked(x: Any, y: Any, where: str, classification: bool) -> tuple[np.ndarray, np.ndarray]:
    inputs = checked_inputs(x, where)
    return inputs, checked_labels(y, len(inputs), where, classification)


def _fraction(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise DataError(f"dataset.{key} must be between 0 and 1, got {value}")
    return float(value)


def _split(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, classification: bool
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold ``fraction`` out, stratified by class where every class has two examples."""
    if len(x) < 2 or round(len(x) * fraction) < 1 or round(len(x) * (1 - fraction)) < 1:
        raise DataError(f"cannot hold {fraction} of {len(x)} examples out: too few examples")
    counts = np.unique(y, return_counts=True)[1]
    stratify = y if classification and counts.min() >= 2 else None
    try:
        x_a, x_b, y_a, y_b = train_test_split(
            x, y, test_size=fraction, random_state=seed, stratify=stratify
        )
    except ValueError:  # fewer held-out examples than classes: not stratified
        x_a, x_b, y_a, y_b = train_test_split(x, y, test_size=fraction, random_state=seed)
    return (x_a, y_a), (x_b, y_b)


def _classes(*labels: np.ndarray) -> int:
    return int(max(int(y.max()) for y in labels if len(y)) + 1)


def _reshape(images: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """Resize (bilinear) to ``image_size`` x ``image_size`` and/or repeat a grey channel."""
    size, channels = settings.get("image_size"), settings.get("channels")
    if size is None and channels is None:
        return images
    if images.ndim != 4:
        raise DataError(
            f"dataset.image_size/channels apply to images (examples, height, width, "
            f"channels); these inputs have shape {images.shape}"
        )
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
