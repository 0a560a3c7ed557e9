"""The MLflow run of one trial (or of a re-train, an LR range test), open while it trains."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, RunTag

from search.cli.signals import held
from search.study.outcome import Outcome, outcome_of
from search.tracking.models import KeptModel

if TYPE_CHECKING:
    from search.tracking.tracker import StudyTracker

__all__ = ["TrialRun"]


class TrialRun:
    """The MLflow child run of one trial.

    Epoch metrics go through a one-thread executor: training does not wait for the store,
    the order of epochs is kept, and ``finish`` waits for every pending write. (MLflow's
    own async mode joins its worker thread at ``set_terminated``, which costs up to a
    second per run.) Every write goes through the tracker's retry; with the store
    unreachable (``run_id`` empty or the tracker offline) the writes are dropped and the
    trial goes on: ``search.sync`` back-fills the run from the Optuna trial later.
    """

    def __init__(self, tracker: StudyTracker, run_id: str) -> None:
        self.tracker, self.run_id = tracker, run_id
        self._pending: list[Future[Any]] = []
        self.finished = False

    @contextmanager
    def ended_by_errors(self) -> Iterator[None]:
        """An exception (Ctrl-C included) that leaves the block before ``finish`` closes the
        run with that exception's outcome (an interrupt: KILLED), so it is never left
        RUNNING."""
        try:
            yield
        except BaseException as exc:
            if not self.finished:
                with held():
                    self.finish(outcome_of(exc))
            raise

    def _write(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.run_id:
            self.tracker.call(getattr(self.tracker.client, method), self.run_id, *args, **kwargs)

    def log_epoch(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Per-epoch metrics with ``step=epoch``, written in the background."""
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for k, v in logs.items()]
        self._pending.append(
            self.tracker.executor.submit(self._write, "log_batch", metrics=metrics)
        )

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._write("log_batch", params=[Param(k, str(v)) for k, v in params.items()])

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self._write("log_batch", metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def log_files(self, directory: Path) -> None:
        self._write("log_artifacts", str(directory))

    def finish(
        self,
        outcome: Outcome,
        metrics: Mapping[str, float] | None = None,
        artifacts_dir: Path | None = None,
        kept: KeptModel | None = None,
    ) -> str:
        """Close the run: wait for epoch metrics, log final metrics, the outcome's tags,
        the ``kept`` model (its model id is returned, "" when none was logged) and the
        artifacts, set the outcome's status. Interrupted half way (a slow artifact upload),
        it is closed KILLED before the interrupt goes on."""
        self.finished = True
        try:
            return self._finish(outcome, metrics, artifacts_dir, kept)
        except BaseException:
            with held():
                self._write("set_terminated", "KILLED")
            raise

    def _finish(
        self,
        outcome: Outcome,
        metrics: Mapping[str, float] | None,
        artifacts_dir: Path | None,
        kept: KeptModel | None,
    ) -> str:
        for pending in self._pending:
            pending.result()
        self._pending.clear()
        now = int(time.time() * 1000)
        final = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
        tags = [RunTag(k, v) for k, v in outcome.tags().items()]
        self._write("log_batch", metrics=final, tags=tags)
        model_id = self.tracker.keep_model(self.run_id, kept, final) if kept else ""
        if artifacts_dir is not None:
            self._write("log_artifacts", str(artifacts_dir))
        self._write("set_terminated", outcome.status)
        return model_id
