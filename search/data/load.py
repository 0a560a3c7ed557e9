"""Data sets by config: loaded once per process, split once, reused by trials.

``SOURCES`` maps a data set's ``dataset.kind`` (its group option: ``cifar10``, ``digits``,
``diabetes``, ``npz``, ``keras``, ``loader``; ``images`` streams a folder instead,
``search.data.images``) to its loader and the ``dataset.*`` keys it
uses: a key set to a value that the chosen set does not use is an error, not ignored.
A loader returns the set's own parts (``Raw``); what is missing is split off the
training set with a fixed ``split_seed``: the test set (``test_fraction``), then
validation (``val_fraction``). The test set is only used for the final evaluation of a
finished trial.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split

from search.cli.errors import DataError
from search.config.task import task_of
from search.data.bundled import load_diabetes, load_digits
from search.data.cifar10 import load_cifar10
from search.data.files import load_npz, load_with_function
from search.data.images import IMAGE_KEYS, load_image_folder
from search.data.keras_sets import load_keras_set
from search.data.raw import Raw, checked_classes, checked_inputs, checked_labels
from search.data.splits import ArraySplits, Splits

__all__ = ["SOURCES", "clear_loaded", "load_splits", "splits_from_config", "splits_of"]

Loader = Callable[[Mapping[str, Any]], Raw]
_COMMON = {"name", "kind", "val_fraction", "split_seed", "train_limit"}
_IMAGES = {"image_size", "channels"}
STREAMED = {"images": _COMMON | IMAGE_KEYS}
SOURCES: dict[str, tuple[Loader, set[str]]] = {
    "cifar10": (load_cifar10, _COMMON | _IMAGES | {"path"}),
    "digits": (load_digits, _COMMON | _IMAGES | {"test_fraction"}),
    "diabetes": (load_diabetes, _COMMON | {"test_fraction"}),
    "npz": (load_npz, _COMMON | _IMAGES | {"path", "test_fraction"}),
    "keras": (load_keras_set, _COMMON | _IMAGES | {"path"}),
    "loader": (load_with_function, _COMMON | _IMAGES | {"loader", "args", "test_fraction"}),
}


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
    return _load(frozen, classification, _version(settings.get("path")))


def _version(path: object) -> int:
    """When the data file last changed: a file rewritten between two calls in one process
    (a notebook) is read again."""
    try:
        return Path(str(path)).expanduser().stat().st_mtime_ns if path else 0
    except OSError:
        return 0


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
) -> ArraySplits:
    """The splits of a built-in data set by name (``search.data.SOURCES``), for scripts."""
    keys = SOURCES[name][1] if name in SOURCES else _COMMON
    given = {
        "name": name, "path": path, "val_fraction": val_fraction,
        "test_fraction": test_fraction, "split_seed": split_seed, "image_size": image_size,
        "channels": channels, "train_limit": train_limit,
    }  # fmt: skip
    frozen = tuple(sorted((k, v) for k, v in given.items() if k in keys or v is not None))
    splits = _load(frozen, classification)
    assert isinstance(splits, ArraySplits)  # a built-in set: not streamed
    return splits


def clear_loaded() -> None:
    """Forget the splits this process loaded (a file changed on disk)."""
    _load.cache_clear()


@functools.lru_cache(maxsize=4)
def _load(frozen: tuple[tuple[str, Any], ...], classification: bool, version: int = 0) -> Splits:
    settings = dict(frozen)
    kind = str(settings.get("kind") or settings.get("name"))
    if kind not in SOURCES and kind not in STREAMED:
        known = ", ".join(sorted([*SOURCES, *STREAMED]))
        raise DataError(f"unknown dataset '{kind}'; use one of: {known}")
    keys = SOURCES[kind][1] if kind in SOURCES else STREAMED[kind]
    unused = sorted(k for k, v in settings.items() if k not in keys and v is not None)
    if unused:
        hint = " (your own arrays: dataset=npz dataset.path=FILE)" if "path" in unused else ""
        raise DataError(
            f"dataset.{unused[0]} is not used by dataset={kind} (it uses "
            f"{', '.join(sorted(keys - {'name', 'kind'}))}); remove it{hint}"
        )
    if kind in STREAMED:
        if not classification:
            raise DataError("dataset=images is a classification: use a crossentropy train.loss")
        return load_image_folder(settings, _display_name(settings, kind))
    val_fraction = _fraction(settings.get("val_fraction"), "val_fraction")
    raw = SOURCES[kind][0](settings)
    where = f"dataset={kind}" + (f" ({settings['path']})" if settings.get("path") else "")
    parts = {
        part: _checked(x, y, f"{where} {part}", classification)
        for part, (x, y) in raw.parts().items()
    }
    if classification:
        checked_classes(parts["train"][1], f"{where} train")
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
    return ArraySplits(
        name=_display_name(settings, kind),
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=_classes(y_train, y_val, y_test) if classification else None,
    )


def _display_name(settings: Mapping[str, Any], kind: str) -> str:
    """``mnist``, ``digits``; a file's set by its file: ``npz digits.npz``."""
    name = str(settings.get("name") or kind)
    path = settings.get("path")
    own = path and name == kind and kind in ("npz", "images")  # the file is the data
    return f"{name} {Path(str(path)).name}" if own else name


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
