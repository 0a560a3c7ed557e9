"""scikit-learn's bundled ``load_digits`` (1,797 real 8x8 images, 10 classes): offline."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from search.cli.errors import DataError

__all__ = ["load_digits"]


def load_digits(
    path: str | None, test_fraction: float | None, split_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images scaled to [0, 1] with a channel axis; a stratified ``test_fraction`` is held
    out once (digits has no test set of its own). ``path`` is unused."""
    from sklearn.datasets import load_digits as sklearn_digits

    if test_fraction is None or not 0.0 < test_fraction < 1.0:
        raise DataError(f"dataset.test_fraction must be between 0 and 1, got {test_fraction}")
    digits = sklearn_digits()
    x = (digits.images / 16.0).astype("float32")[..., np.newaxis]
    y = digits.target.astype("int64")
    x_full, x_test, y_full, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=split_seed, stratify=y
    )
    return x_full, y_full, x_test, y_test
