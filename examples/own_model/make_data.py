"""Write data/digits.npz: scikit-learn's digits as 8x8x1 uint8 images (the harness scales
uint8 inputs to [0, 1]), a training and a test part (it splits validation off the first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

digits = load_digits()
x = (digits.images * 255 / 16).round().astype("uint8")[..., np.newaxis]
x_train, x_test, y_train, y_test = train_test_split(
    x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
)
Path("data").mkdir(exist_ok=True)
np.savez_compressed(
    "data/digits.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
)
print(f"wrote data/digits.npz: {len(x_train)} train, {len(x_test)} test images")
