"""What a data set's loader returns (``Raw``: training arrays and, where the set has them,
its own validation and test arrays) and the checks every set passes before a trial sees
it: matching lengths, numbers that are finite, labels that are class numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.cli.errors import DataError

__all__ = ["Raw", "checked_classes", "checked_labels", "checked_inputs"]


@dataclass(frozen=True)
class Raw:
    """Arrays as loaded; ``None`` where the set has no part of its own (split off later)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    def parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        found = {"train": (self.x_train, self.y_train)}
        if self.x_val is not None and self.y_val is not None:
            found["val"] = (self.x_val, self.y_val)
        if self.x_test is not None and self.y_test is not None:
            found["test"] = (self.x_test, self.y_test)
        return found


def checked_inputs(x: object, where: str) -> np.ndarray:
    """``x`` as float32 with at least one example and every value finite."""
    try:
        array = np.asarray(x, dtype="float32")
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: the inputs are not numbers ({exc})") from None
    if array.ndim < 2 or len(array) == 0:
        raise DataError(
            f"{where}: the inputs have shape {array.shape}; need (examples, features...) "
            "with at least one example"
        )
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).reshape(len(array), -1).any(axis=1).sum())
        held = f"{bad} examples hold" if bad > 1 else "1 example holds"
        raise DataError(f"{where}: {held} NaN or inf values; clean or drop them")
    return array


def checked_labels(y: object, n: int, where: str, classification: bool) -> np.ndarray:
    """Labels for ``n`` examples: class numbers (int64, >= 0) for a classification, finite
    float32 targets for a regression."""
    try:
        array = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: the labels are not numbers ({exc})") from None
    if len(array) != n:
        raise DataError(f"{where}: {n} inputs but {len(array)} labels; give one label per input")
    if array.ndim > 1 and array.shape[1:] == (1,) * (array.ndim - 1):
        array = array.reshape(-1)
    if not classification:
        try:
            targets = array.astype("float32")
        except (TypeError, ValueError):
            raise DataError(f"{where}: the targets are not numbers ({array.dtype})") from None
        if not np.isfinite(targets).all():
            raise DataError(f"{where}: the targets hold NaN or inf values; clean or drop them")
        return targets
    if array.ndim != 1:
        raise DataError(
            f"{where}: labels of shape {array.shape}; a classification takes one class "
            "number per example (not one-hot rows: use y.argmax(axis=1))"
        )
    if array.dtype.kind not in "iuf" or (
        array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array)))
    ):
        raise DataError(
            f"{where}: the labels are not class numbers ({array.dtype}, e.g. {array[:3]}); "
            "for a regression on these targets set train.loss=mse"
        )
    labels = array.astype("int64")
    if labels.min() < 0:
        raise DataError(f"{where}: a label is {labels.min()}; class numbers start at 0")
    return labels


def checked_classes(labels: np.ndarray, where: str) -> None:
    """Class numbers that are more like measurements (a regression's whole-number targets,
    such as diabetes' scores): over 20 classes with under 5 examples each on average."""
    found = len(np.unique(labels))
    if found > 20 and 5 * found > len(labels):
        raise DataError(
            f"{where}: {found} different labels for {len(labels)} examples (under 5 per "
            "class): these look like regression targets; set train.loss=mse "
            "metric=val_mae direction=minimize"
        )
