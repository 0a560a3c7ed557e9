"""MLflow tracking: one experiment and one parent run per study, a child run per trial.

The child run (``search.tracking.runs.TrialRun``) is opened when the trial starts (so a
crashed trial still has its run), receives per-epoch metrics asynchronously, and is closed
with the trial's outcome. Everything goes through ``MlflowClient`` with explicit run ids: no
fluent "active run", which is thread-local and would tie trials to one thread.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import requests
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from omegaconf import DictConfig

from search.cli.errors import HarnessError, first_line
from search.cli.hints import next_command
from search.study.names import Role, Tag
from search.tracking.models import KeptModel, log_keras_model
from search.tracking.params import MAX_BATCH, chunks, flatten_config, run_name
from search.tracking.runs import TrialRun
from search.tracking.store import EXPERIMENT_KIND, make_client

__all__ = ["StudyTracker"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_UNREACHABLE = (MlflowException, OSError, requests.RequestException)


class StudyTracker:
    """Owns the study's MLflow experiment, its parent run and the trials' child runs."""

    def __init__(
        self,
        tracking_uri: str,
        artifact_root: str,
        study_name: str,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.study_name = study_name
        self.sync_hint = f"python -m search.sync study_name={study_name}"
        self.client = make_client(tracking_uri)
        self.artifact_root = Path(artifact_root).expanduser().resolve()
        self.experiment_id = ""
        self.parent_run_id = ""
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-epochs")
        self.retries, self.backoff = retries, backoff
        self.online = True

    @classmethod
    def from_config(cls, cfg: DictConfig) -> StudyTracker:
        """The tracker of the study ``cfg`` names, on its ``tracking_uri`` and ``artifact_root``."""
        tracker = cls(str(cfg.tracking_uri), str(cfg.artifact_root), str(cfg.study_name))
        tracker.sync_hint = next_command("search.sync", cfg)
        return tracker

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """A request to the MLflow store, retried with a bounded backoff (1 s, 2 s, ...).

        When it still fails the tracker goes offline (said once): later writes are dropped
        at once, the study goes on, its results stay in Optuna, and ``search.sync``
        back-fills the MLflow runs. The next trial tries the store again.
        """
        if not self.online:
            return None
        for attempt in range(self.retries):
            try:
                return fn(*args, **kwargs)
            except _UNREACHABLE as exc:
                error: BaseException = exc
                if attempt + 1 < self.retries:
                    time.sleep(self.backoff * 2**attempt)
        self._go_offline(error)
        return None

    def _go_offline(self, error: BaseException) -> None:
        if self.online:
            log.warning(
                f"MLflow store {self.client.tracking_uri} unreachable ({first_line(error)}); "
                "the study goes on and its results stay in Optuna; once the store is back, "
                f"{self.sync_hint} back-fills the MLflow runs"
            )
        self.online = False

    def reconnect(self) -> bool:
        """One try to reach the store again (at the start of each trial while offline)."""
        if not self.online:
            try:
                self.client.search_experiments(max_results=1)
            except _UNREACHABLE:
                return False
            self.online = True
            log.warning(f"MLflow store {self.client.tracking_uri} reachable again")
        return True

    def attach(self, experiment_id: str, parent_run_id: str) -> None:
        """Use the experiment and parent run another process opened (a worker)."""
        self.experiment_id, self.parent_run_id = experiment_id, parent_run_id

    def check(self) -> None:
        """Reach the MLflow store without creating anything in it (but its schema)."""
        try:
            self.client.search_experiments(max_results=1)
        except MlflowException as exc:
            raise HarnessError(
                f"tracking_uri: cannot use the MLflow store ({first_line(exc)}); check tracking_uri"
            ) from None

    def open(self, parent: bool = True) -> None:
        """Get or create the experiment and (with ``parent``) the study's parent run."""
        try:
            self.experiment_id = self._experiment()
            if parent:
                self.parent_run_id = self._parent_run()
        except MlflowException as exc:
            raise HarnessError(
                f"tracking_uri: cannot use the MLflow store ({first_line(exc)}); check tracking_uri"
            ) from None

    def _experiment(self) -> str:
        experiment = self.client.get_experiment_by_name(self.study_name)
        if experiment is None:
            try:
                return self.client.create_experiment(
                    self.study_name, artifact_location=self._location(), tags=EXPERIMENT_KIND
                )
            except MlflowException:  # another machine's worker created it a moment ago
                experiment = self.client.get_experiment_by_name(self.study_name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        for key, value in EXPERIMENT_KIND.items():  # an experiment made by an older version
            if experiment.tags.get(key) != value:
                self.client.set_experiment_tag(experiment.experiment_id, key, value)
        return str(experiment.experiment_id)

    def _location(self) -> str | None:
        """Artifacts under ``artifact_root`` for a local store; a tracking server decides
        for itself (it serves them to every machine)."""
        if self.client.tracking_uri.startswith(("http://", "https://", "databricks")):
            return None
        return (self.artifact_root / self.study_name).as_uri()

    def _parent_run(self) -> str:
        """The study's one parent run: the oldest; made if none. Workers on several
        machines that start together may each make one: all keep the oldest, drop theirs."""
        parents = self._parents()
        if not parents:
            self.client.create_run(
                self.experiment_id,
                run_name=self.study_name,
                tags={Tag.ROLE: Role.STUDY, Tag.STUDY: self.study_name},
            )
            parents = self._parents()
            for extra in parents[1:]:
                with contextlib.suppress(MlflowException):
                    self.client.delete_run(extra.info.run_id)
        run_id = str(parents[0].info.run_id)
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _parents(self) -> list[Run]:
        return list(
            self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{Tag.ROLE}` = '{Role.STUDY}'",
                order_by=["attributes.start_time ASC", "attributes.run_id ASC"],
            )
        )

    def start_trial(
        self,
        number: int,
        sampled: Mapping[str, Any],
        config: Mapping[str, Any],
        omit: Collection[str] = (),
        revision: int = 0,
        extra: Mapping[str, str] | None = None,
    ) -> TrialRun:
        """Open the trial's child run with its resolved config as params (less ``omit``,
        keys whose value is only known later), tagged with the study revision (and ``extra``)."""
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_run_id,
            MLFLOW_RUN_NAME: run_name(number, sampled),
            Tag.ROLE: Role.TRIAL,
            Tag.STUDY: self.study_name,
            Tag.TRIAL: str(number),
            Tag.STATE: "RUNNING",
            Tag.REVISION: str(revision),
            **(extra or {}),
        }
        run = (
            self.call(self.client.create_run, self.experiment_id, tags=tags)
            if self.reconnect()
            else None
        )
        if run is None:
            return TrialRun(self, "")
        self.log_config(run.info.run_id, config, omit)
        return TrialRun(self, run.info.run_id)

    def start_run(self, name: str, tags: Mapping[str, str], config: Mapping[str, Any]) -> TrialRun:
        """A run that is not a trial (a re-train), in the study's experiment."""
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={Tag.STUDY: self.study_name, **tags}
        )
        self.log_config(run.info.run_id, config)
        return TrialRun(self, run.info.run_id)

    def keep_model(self, run_id: str, kept: KeptModel, metrics: Sequence[Metric] = ()) -> str:
        """Log (and register) ``kept`` with the run; its model id, "" when the store is
        offline or the model cannot be saved (said: the run and the trial go on)."""
        if not (run_id and self.online):
            return ""
        try:
            return log_keras_model(self.client, self.experiment_id, run_id, kept, metrics)
        except Exception as exc:  # a layer Keras cannot save, the store gone: keep the trial
            log.warning(
                f"could not keep the model of run {run_id} in MLflow ({first_line(exc)}); "
                "make its layers savable (keras.saving.register_keras_serializable) or "
                "set tracking.log_models=none"
            )
            return ""

    def log_config(
        self, run_id: str, config: Mapping[str, Any], omit: Collection[str] = ()
    ) -> None:
        params = [Param(k, v) for k, v in flatten_config(config).items() if k not in omit]
        for chunk in chunks(params, MAX_BATCH):
            self.call(self.client.log_batch, run_id, params=chunk)

    def summarize(
        self,
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        files: Iterable[Path],
        folders: Mapping[str, Path] | None = None,
    ) -> None:
        """Log the study's summary on the parent run and mark it finished."""
        step = int(metrics.get("n_finished_trials", 0))
        now = int(time.time() * 1000)
        self.call(
            self.client.log_batch,
            self.parent_run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        for path in files:
            self.call(self.client.log_artifact, self.parent_run_id, str(path))
        for name, folder in (folders or {}).items():
            if folder.is_dir():
                self.call(self.client.log_artifacts, self.parent_run_id, str(folder), name)
        self.call(self.client.set_terminated, self.parent_run_id, "FINISHED")

    def summarized(self) -> bool:
        """True when the study's parent run exists and is FINISHED: its summary is written
        (a run interrupted during the summary left it KILLED)."""
        experiment = self.client.get_experiment_by_name(self.study_name)
        if experiment is None or experiment.lifecycle_stage == "deleted":
            return False
        self.experiment_id = str(experiment.experiment_id)
        parents = self._parents()
        return bool(parents) and parents[0].info.status == "FINISHED"

    def close_parent(self, status: str) -> None:
        if self.parent_run_id:
            self.call(self.client.set_terminated, self.parent_run_id, status)

    def trial_runs(self) -> dict[int, list[Run]]:
        """The study's child runs by trial number (every page of the search)."""
        out: dict[int, list[Run]] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{Tag.ROLE}` = '{Role.TRIAL}'",
                max_results=1000,
                page_token=token,
            )
            for run in page:
                number = run.data.tags.get(Tag.TRIAL, "")
                if number.isdigit():
                    out.setdefault(int(number), []).append(run)
            token = page.token
            if not token:
                return out
