"""Data sets, loaded once per process and split once: ``splits`` (the ``Splits`` every trial
trains on, and ``LOADERS``, the registry of data sets by ``dataset.name``), ``cifar10``
(the Keras loader or a local tarball, read safely) and ``digits`` (scikit-learn's, offline)."""

from __future__ import annotations

from search.data.cifar10 import load_cifar10, load_cifar10_tarball
from search.data.digits import load_digits
from search.data.splits import LOADERS, Splits, load_splits, splits_from_config

__all__ = [
    "LOADERS",
    "Splits",
    "load_cifar10",
    "load_cifar10_tarball",
    "load_digits",
    "load_splits",
    "splits_from_config",
]
