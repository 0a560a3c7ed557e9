"""Keras callbacks the harness adds to ``fit``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import optuna
from optuna_integration import KerasPruningCallback

from search.cli.signals import raise_pending
from search.study.outcome import DIVERGED, Diagnosed

__all__ = ["EpochRecorder", "PruningCallback", "TrialDiverged"]


class TrialDiverged(Diagnosed):
    """The loss went NaN or infinite: the configuration diverged."""

    diagnosis = DIVERGED


EpochSink = Callable[[int, Mapping[str, float]], None]


class EpochRecorder(keras.callbacks.Callback):
    """Keeps every epoch's logs (plus learning rate and seconds) and forwards them to a sink.

    It survives an interrupted ``fit`` (a pruned trial): ``rows`` holds the epochs done.
    It is also the NaN guard: a non-finite loss ends the fit with ``TrialDiverged`` at the
    end of that epoch, before any later callback (pruning) sees the epoch.
    (Keras' ``TerminateOnNaN`` checks every batch, which makes Keras fetch the logs of
    every batch from the device and costs several percent on short epochs.)
    """

    def __init__(self, sink: EpochSink | None = None) -> None:
        super().__init__()
        self.sink = sink
        self.rows: list[dict[str, float]] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        row = {k: float(v) for k, v in (logs or {}).items()}
        row.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self._learning_rate())))
        row["epoch_seconds"] = time.perf_counter() - self._started
        self.rows.append({"epoch": float(epoch), **row})
        if self.sink is not None:
            self.sink(epoch, row)
        raise_pending()  # a Ctrl-C/SIGTERM whose exception Python dropped
        if not math.isfinite(row.get("loss", 0.0)):
            raise TrialDiverged(f"loss became {row['loss']} at epoch {epoch}")

    def _learning_rate(self) -> Any:
        optimizer = self.model.optimizer
        return optimizer.learning_rate if optimizer is not None else math.nan


class PruningCallback(KerasPruningCallback):
    """Optuna's Keras pruning callback, but never at the last epoch: the trial has trained
    its whole budget by then, so pruning it saves nothing and would drop a fully trained
    trial from the best. That epoch is reported; the trial ends COMPLETE."""

    def __init__(self, trial: optuna.Trial, monitor: str, epochs: int) -> None:
        super().__init__(trial, monitor)
        self.trial, self.monitor, self.last_epoch = trial, monitor, epochs - 1

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if epoch < self.last_epoch:
            super().on_epoch_end(epoch, dict(logs or {}))
            return
        value = (logs or {}).get(self.monitor)
        if value is not None:
            self.trial.report(float(value), step=epoch)
