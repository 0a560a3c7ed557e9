"""``dataset=images``: a folder with one sub-folder per class, read by Keras' own
``image_dataset_from_directory`` and streamed as a ``tf.data`` pipeline (decoded once into
a cache file, shuffled each epoch, prefetched), never as one big array: a folder larger
than memory trains. Validation and test are held out of the folder by file, with the
fixed ``split_seed``; the test set is read batch by batch.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from search.cli.errors import DataError, first_line

__all__ = ["IMAGE_KEYS", "ImageFolderSplits", "load_image_folder"]

IMAGE_KEYS = {"path", "image_size", "channels", "test_fraction"}
_SHUFFLE = 10_000  # examples in the shuffle buffer
_AUTOTUNE = -1  # tf.data.AUTOTUNE


class ImageFolderSplits:
    """Train / validation / test as ``tf.data`` pipelines of (image in [0, 1], class)."""

    def __init__(self, name: str, parts: dict[str, Any], class_names: list[str], size: int,
                 channels: int, seed: int) -> None:  # fmt: skip
        import tensorflow as tf

        self.name: str = name
        self.num_classes: int | None = len(class_names)
        self.class_names, self.seed = class_names, seed
        self.input_shape = (size, size, channels)
        self.contents = ""  # set by load_image_folder: the files' listing
        self._parts = parts  # decoded, scaled, not cached: for probes
        self._probes: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._counts = {part: int(ds.cardinality()) for part, ds in parts.items()}
        cache = Path(tempfile.mkdtemp(prefix="search-images-"))
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
        self._cached = {
            part: ds.cache(str(cache / part)) for part, ds in parts.items() if part != "test"
        }
        self._tf = tf

    @property
    def n_train(self) -> int:
        return self._counts["train"]

    def sizes(self) -> str:
        c = self._counts
        return f"{c['train']} train / {c['val']} val / {c['test']} test (streamed)"

    def probe(self, part: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` examples of ``part`` (``train`` or ``val``) as arrays, the same ones on every
        call (the gradient probes compare the start of training with its end)."""
        key = (part, n)
        if key not in self._probes:
            x, y = next(iter(self._parts[part].batch(n).as_numpy_iterator()))
            self._probes[key] = (np.asarray(x), np.asarray(y))
        return self._probes[key]

    def fit_inputs(self, batch_size: int) -> dict[str, Any]:
        """The training pipeline (reshuffled each epoch) and validation, batched."""
        train = self._cached["train"].shuffle(
            min(_SHUFFLE, self._counts["train"]), seed=self.seed, reshuffle_each_iteration=True
        )
        return {
            "x": train.batch(batch_size).prefetch(_AUTOTUNE),
            "shuffle": False,  # the pipeline shuffles
            "validation_data": self._cached["val"].batch(batch_size).prefetch(_AUTOTUNE),
        }

    def training_batches(self, batch_size: int, seed: int) -> Iterator[tuple[Any, Any]]:
        """Shuffled training batches without end (the learning-rate range test)."""
        stream = self._parts["train"].shuffle(min(_SHUFFLE, self._counts["train"]), seed=seed)
        return iter(stream.repeat().batch(batch_size).as_numpy_iterator())

    def decode_all(self) -> None:
        """Read every image once, up front: the training and validation caches are filled
        (the first epoch reads them), a file that does not decode is found before a trial."""
        for part in ("train", "val"):
            for _ in self._cached[part].batch(256).prefetch(_AUTOTUNE):
                pass
        for _ in self._parts["test"].batch(256).prefetch(_AUTOTUNE):
            pass

    def test_batches(self, batch_size: int = 256) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield from self._parts["test"].batch(batch_size).prefetch(_AUTOTUNE).as_numpy_iterator()

    @functools.cached_property
    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and variance of the flattened training images, in one pass."""
        total, squares, n = 0.0, 0.0, 0
        for x, _ in self._parts["train"].batch(256).as_numpy_iterator():
            flat = x.reshape(len(x), -1).astype("float64")
            total, squares, n = (
                total + flat.sum(axis=0),
                squares + (flat**2).sum(axis=0),
                n + len(x),
            )
        mean = np.asarray(total) / n
        return mean.astype("float32"), (np.asarray(squares) / n - mean**2).astype("float32")


def load_image_folder(settings: Mapping[str, Any], name: str) -> ImageFolderSplits:
    """The folder ``dataset.path``: classes from its sub-folders (sorted), images resized to
    ``image_size``, ``channels`` 1 (grey) or 3 (RGB)."""
    import keras
    import tensorflow as tf

    folder = Path(str(settings.get("path") or "")).expanduser()
    if not settings.get("path"):
        raise DataError("dataset.path needs a value: dataset=images dataset.path=FOLDER")
    if not folder.is_dir():
        raise DataError(
            f"dataset.path: {folder} "
            f"{'is a file, not a folder' if folder.is_file() else 'does not exist'}; "
            "dataset=images reads a folder with one "
            "sub-folder of images per class (data/train/cats/*.jpg, data/train/dogs/*.jpg)"
        )
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"dataset.path: {folder} has {len(classes)} class folder(s); put each class's "
            "images in a sub-folder of its own (two at least)"
        )
    size, channels = _whole(settings, "image_size", 64), _whole(settings, "channels", 3)
    if channels not in (1, 3):
        raise DataError(f"dataset.channels must be 1 (grey) or 3 (RGB), got {channels}")
    val, test = (_fraction(settings, key) for key in ("val_fraction", "test_fraction"))
    seed = int(settings.get("split_seed") or 0)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # "Using 420 files for training."
            train, held = keras.utils.image_dataset_from_directory(
                str(folder), labels="inferred", label_mode="int", class_names=classes,
                color_mode="grayscale" if channels == 1 else "rgb", batch_size=None,
                image_size=(size, size), shuffle=True, seed=seed, validation_split=val + test,
                subset="both", verbose=False,
            )  # fmt: skip
    except ValueError as exc:  # no images, a split too small for the files there
        raise DataError(f"dataset.path: cannot read images from {folder} ({first_line(exc)})")
    n_held = int(held.cardinality())
    n_val = round(n_held * val / (val + test))
    if n_val < 1 or n_held - n_val < 1 or int(train.cardinality()) < 1:
        raise DataError(
            f"dataset.path: {folder} holds too few images to hold out validation and test "
            f"({int(train.cardinality()) + n_held} images); add images or lower the fractions"
        )
    limit = settings.get("train_limit")
    if limit is not None:
        train = train.take(int(limit))
    scale = functools.partial(_scaled, tf=tf)
    parts = {
        "train": train.map(scale, num_parallel_calls=_AUTOTUNE),
        "val": held.take(n_val).map(scale, num_parallel_calls=_AUTOTUNE),
        "test": held.skip(n_val).map(scale, num_parallel_calls=_AUTOTUNE),
    }
    splits = ImageFolderSplits(name, parts, classes, size, channels, seed)
    files = [*train.file_paths, *held.file_paths]
    splits.contents = _listing(folder, files)
    try:
        splits.decode_all()
    except tf.errors.OpError as exc:  # a file that is not an image (cut off, renamed)
        raise DataError(_undecodable(files, tf) or f"dataset.path: {first_line(exc)}") from None
    return splits


def _undecodable(files: list[str], tf: Any) -> str | None:
    """The first file TensorFlow cannot decode, as a one-line problem."""
    for file in sorted(files):
        try:
            tf.io.decode_image(tf.io.read_file(file), expand_animations=False)
        except tf.errors.OpError as exc:
            return (
                f"dataset.path: cannot decode {file} ({first_line(exc).split(' [Op:')[0]}); "
                "remove or replace the file"
            )
    return None


def _listing(folder: Path, files: list[str]) -> str:
    """A digest of the image files by relative path and size (not their bytes: a large
    folder is not read twice); an image added, removed, renamed or resized changes it."""
    digest = hashlib.blake2b(digest_size=8)
    for file in sorted(files):
        digest.update(f"{Path(file).relative_to(folder)}:{Path(file).stat().st_size};".encode())
    return digest.hexdigest()


def _scaled(x: Any, y: Any, tf: Any) -> tuple[Any, Any]:
    return tf.cast(x, "float32") / 255.0, y


def _whole(settings: Mapping[str, Any], key: str, default: int) -> int:
    value = settings.get(key)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"dataset.{key} must be a positive whole number, got {value!r}")
    return value


def _fraction(settings: Mapping[str, Any], key: str) -> float:
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 0.5:
        raise DataError(f"dataset.{key} must be between 0 and 0.5 for images, got {value!r}")
    return float(value)
