"""CIFAR-10: a local ``cifar-10-python.tar.gz`` (the standard pickled batches) when
``dataset.path`` is set, else the Keras loader (downloads once, cached under
``~/.keras/datasets``).

Only tarball members with the expected names are unpickled, with an unpickler that admits
nothing but the NumPy arrays a CIFAR batch holds.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from search.cli.errors import DataError, first_line
from search.data.raw import Raw

__all__ = ["load_cifar10", "load_cifar10_tarball"]

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"{CIFAR_DIR}/data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = f"{CIFAR_DIR}/test_batch"


def load_cifar10(settings: Mapping[str, Any]) -> Raw:
    """CIFAR-10's own train and test sets, scaled to [0, 1] (``dataset.path``: a tarball)."""
    path = settings.get("path")
    if path is not None:
        (x_train, y_train), (x_test, y_test) = load_cifar10_tarball(str(path))
    else:
        (x_train, y_train), (x_test, y_test) = _download_cifar10()
    return Raw(
        _scale(x_train),
        y_train.reshape(-1).astype("int64"),
        x_test=_scale(x_test),
        y_test=y_test.reshape(-1).astype("int64"),
    )


def _scale(images: np.ndarray) -> np.ndarray:
    return (images.astype("float32") / 255.0).reshape(images.shape)


def _download_cifar10() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as exc:  # offline, proxy, partial download: all mean the same here
        raise DataError(
            f"cannot download CIFAR-10 ({first_line(exc, 240)}); put cifar-10-python.tar.gz "
            "somewhere and pass dataset.path=/path/to/cifar-10-python.tar.gz, "
            "or use dataset=digits"
        ) from None
    return (x_train, y_train), (x_test, y_test)


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
