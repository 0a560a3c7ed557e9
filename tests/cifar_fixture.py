"""Write a small ``cifar-10-python.tar.gz`` in the real format (pickled batches)."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

DIR = "cifar-10-batches-py"


def batch_bytes(images: np.ndarray, labels: list[int], name: str) -> bytes:
    """A batch as CIFAR ships it: a dict with bytes keys, row-major (N, 3072) uint8 data."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def make_cifar_tarball(
    path: Path, per_batch: int = 40, test: int = 50, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Five training batches and a test batch; returns the images and labels written."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(5 * per_batch, 32, 32, 3), dtype=np.uint8)
    y_train = np.arange(5 * per_batch) % 10
    x_test = rng.integers(0, 256, size=(test, 32, 32, 3), dtype=np.uint8)
    y_test = np.arange(test) % 10
    members = {
        f"{DIR}/data_batch_{i + 1}": batch_bytes(
            x_train[i * per_batch : (i + 1) * per_batch],
            y_train[i * per_batch : (i + 1) * per_batch].tolist(),
            f"training batch {i + 1} of 5",
        )
        for i in range(5)
    }
    members[f"{DIR}/test_batch"] = batch_bytes(x_test, y_test.tolist(), "testing batch 1 of 1")
    members[f"{DIR}/batches.meta"] = pickle.dumps({b"label_names": [b"airplane"] * 10})
    write_tar(path, members)
    return x_train, y_train, x_test, y_test


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
