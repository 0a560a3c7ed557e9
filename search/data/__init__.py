"""Data sets, loaded once per process and split once: ``splits`` (``Splits``, what every
trial reads, and ``ArraySplits``, a set in memory), ``load`` (``SOURCES``, the data sets by
``dataset.kind``, and the splitting), ``images`` (a class-per-folder tree, streamed),
``raw`` (what a loader returns and the checks on it), ``cifar10`` (the Keras loader or a
local tarball, read safely), ``bundled`` (scikit-learn's digits and diabetes, offline),
``keras_sets`` (``keras.datasets``) and ``files`` (a user's ``.npz`` or loader function)."""

from __future__ import annotations

from search.data.bundled import load_diabetes, load_digits
from search.data.cifar10 import load_cifar10, load_cifar10_tarball
from search.data.images import ImageFolderSplits
from search.data.load import SOURCES, clear_loaded, load_splits, splits_from_config, splits_of
from search.data.raw import Raw
from search.data.splits import ArraySplits, Splits

__all__ = [
    "SOURCES",
    "ArraySplits",
    "ImageFolderSplits",
    "Raw",
    "Splits",
    "clear_loaded",
    "load_cifar10",
    "load_cifar10_tarball",
    "load_diabetes",
    "load_digits",
    "load_splits",
    "splits_from_config",
    "splits_of",
]
