"""``dataset=keras``: the sets of ``keras.datasets`` by ``dataset.name`` (``mnist``,
``fashion_mnist``, ``cifar10``, ``cifar100``), downloaded once into ``~/.keras/datasets``.
Offline, ``dataset.path`` is a local copy where the format allows: ``mnist.npz`` for
mnist, ``cifar-10-python.tar.gz`` for cifar10."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from search.cli.errors import DataError, first_line
from search.data.cifar10 import load_cifar10_tarball
from search.data.raw import Raw

__all__ = ["KERAS_SETS", "load_keras_set"]

KERAS_SETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
_LOCAL = {"mnist": "mnist.npz", "cifar10": "cifar-10-python.tar.gz"}


def load_keras_set(settings: Mapping[str, Any]) -> Raw:
    """Images scaled to [0, 1], a channel axis added to grey ones; the set's own test set."""
    import keras

    name = str(settings.get("name"))
    if name not in KERAS_SETS:
        raise DataError(
            f"dataset.name: {name!r} is not in keras.datasets; use one of "
            f"{', '.join(KERAS_SETS)} (or dataset=npz for your own arrays)"
        )
    path = settings.get("path")
    if path is not None and name not in _LOCAL:
        raise DataError(
            f"dataset.path: keras.datasets.{name} reads only its own download cache "
            f"(~/.keras/datasets); drop dataset.path, or save the arrays with numpy.savez "
            "and use dataset=npz"
        )
    if path is not None and not Path(str(path)).expanduser().is_file():
        raise DataError(f"dataset.path: no file {path}; give a local {_LOCAL[name]}")
    if name == "cifar10" and path is not None:
        train, test = load_cifar10_tarball(str(path))
    else:
        module = getattr(keras.datasets, name)
        kwargs = {"path": str(Path(str(path)).expanduser().resolve())} if path else {}
        try:
            train, test = module.load_data(**kwargs)
        except Exception as exc:  # offline, proxy, a partial download
            local = f"dataset.path=/path/to/{_LOCAL[name]}, " if name in _LOCAL else ""
            raise DataError(
                f"cannot load keras.datasets.{name} ({first_line(exc, 200)}); offline, give "
                f"{local}or use dataset=digits"
            ) from None
    return Raw(_images(train[0]), train[1], x_test=_images(test[0]), y_test=test[1])


def _images(x: np.ndarray) -> np.ndarray:
    x = x.astype("float32") / 255.0
    return x[..., np.newaxis] if x.ndim == 3 else x
