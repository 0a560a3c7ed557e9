"""A user's own arrays: ``dataset=npz`` (a ``.npz`` file with ``x_train``, ``y_train`` and,
optionally, ``x_val``, ``y_val``, ``x_test``, ``y_test``) and ``dataset=loader`` (a function
``module:function`` that returns them). Files are read without pickles."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from search.cli.errors import DataError, first_line
from search.data.raw import Raw
from search.models import BuilderError, import_object

__all__ = ["ARRAY_NAMES", "load_npz", "load_with_function", "raw_from"]

ARRAY_NAMES = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def load_npz(settings: Mapping[str, Any]) -> Raw:
    """The arrays of ``dataset.path``; uint8 inputs (images) are scaled to [0, 1]."""
    given = settings.get("path")
    if not given:
        raise DataError("dataset=npz needs dataset.path=FILE.npz (arrays x_train, y_train, ...)")
    path = Path(str(given)).expanduser()
    if not path.is_file():
        where = f"{path} is a directory" if path.is_dir() else f"no file {path}"
        raise DataError(f"dataset.path: {where}; give a .npz file made with numpy.savez")
    with path.open("rb") as head:
        if not head.read(6).startswith((b"PK", b"\x93NUMPY")):  # zip, .npy: else numpy guesses
            raise DataError(
                f"dataset.path: {path} is not a .npz archive; make one with "
                "numpy.savez(path, x_train=..., y_train=...)"
            )
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"dataset.path: {path} is one .npy array, not a .npz archive")
            arrays = {name: archive[name] for name in archive.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(
            f"dataset.path: cannot read {path} as a .npz archive ({first_line(exc)}); it may "
            "be truncated or not made with numpy.savez (object arrays are refused)"
        ) from None
    return raw_from(arrays, f"dataset.path {path}")


def load_with_function(settings: Mapping[str, Any]) -> Raw:
    """Call ``dataset.loader`` (``module:function``) with ``dataset.args`` as keywords."""
    reference = str(settings.get("loader") or "")
    if not reference:
        raise DataError("dataset=loader needs dataset.loader=module:function")
    try:
        fn = import_object(reference, "dataset.loader")
    except BuilderError as exc:
        raise DataError(str(exc)) from None
    if not callable(fn):
        kind = type(fn).__name__
        raise DataError(f"dataset.loader: {reference} is of type {kind}, not a function")
    args = settings.get("args") or {}
    try:
        returned = fn(**dict(args))
    except Exception as exc:
        raise DataError(
            f"dataset.loader {reference} raised {type(exc).__name__}: {first_line(exc)}"
        ) from None
    return raw_from(returned, f"dataset.loader {reference}")


def raw_from(returned: object, where: str) -> Raw:
    """Arrays as a mapping (the npz names), ``((x, y), (x, y))`` as Keras' loaders return
    (train, test), three pairs (train, val, test) or one pair ``(x, y)``."""
    if isinstance(returned, Mapping):
        unknown = sorted(set(map(str, returned)) - set(ARRAY_NAMES))
        if unknown:
            raise DataError(
                f"{where}: unknown arrays {', '.join(unknown)}; use {', '.join(ARRAY_NAMES)}"
            )
        parts = {name: returned.get(name) for name in ARRAY_NAMES}
    elif (
        isinstance(returned, tuple | list)
        and len(returned) in (1, 2, 3)
        and all(isinstance(pair, tuple | list) and len(pair) == 2 for pair in returned)
    ):
        names = {1: ["train"], 2: ["train", "test"], 3: ["train", "val", "test"]}[len(returned)]
        parts = {
            f"{axis}_{part}": pair[i]
            for part, pair in zip(names, returned, strict=True)
            for i, axis in enumerate("xy")
        }
    elif isinstance(returned, tuple | list) and len(returned) == 2:
        parts = {"x_train": returned[0], "y_train": returned[1]}
    else:
        raise DataError(
            f"{where} gave type {type(returned).__name__}; return a dict of arrays (x_train, "
            "y_train, ...) or ((x_train, y_train), (x_test, y_test))"
        )
    for part in ("train", "val", "test"):
        x, y = parts.get(f"x_{part}"), parts.get(f"y_{part}")
        if (x is None) != (y is None):
            have, lack = (f"x_{part}", f"y_{part}") if y is None else (f"y_{part}", f"x_{part}")
            raise DataError(f"{where}: {have} without {lack}; give both or neither")
    if parts.get("x_train") is None:
        raise DataError(f"{where}: no x_train and y_train; they are needed")
    arrays = {k: None if v is None else np.asarray(_scaled(v)) for k, v in parts.items()}
    x_train, y_train = arrays.pop("x_train"), arrays.pop("y_train")
    assert x_train is not None and y_train is not None
    return Raw(x_train, y_train, **arrays)


def _scaled(x: Any) -> Any:
    if isinstance(x, np.ndarray) and x.dtype == np.uint8:
        return x.astype("float32") / 255.0
    return x
