"""scikit-learn's bundled sets, offline: ``digits`` (1,797 real 8x8 images, 10 classes) and
``diabetes`` (442 patients, 10 features, a disease-progression score: a regression)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from search.data.raw import Raw

__all__ = ["load_diabetes", "load_digits"]


def load_digits(settings: Mapping[str, Any]) -> Raw:
    """Images scaled to [0, 1] with a channel axis; no test set of its own."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = (digits.images / 16.0).astype("float32")[..., np.newaxis]
    return Raw(x, digits.target.astype("int64"))


def load_diabetes(settings: Mapping[str, Any]) -> Raw:
    """The ten standardised features and the progression score (float targets)."""
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    data = sklearn_diabetes()
    return Raw(data.data.astype("float32"), data.target.astype("float32"))
