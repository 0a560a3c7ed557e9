"""``python -m search.train from=<best.yaml> [key=value ...]``: train one config, tracked.

The exported file is the whole config (keys added to the harness since it was exported
get their defaults); ``key=value`` overrides on the command line apply on top of it. The
run goes to the study's MLflow experiment, tagged as a re-train of the source trial and
closed with the outcome a trial would get (a re-train stuck at chance has the same
``diagnosis`` tag). Same seed, same machine: the trial's validation accuracy is reproduced.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from search.cli import HarnessError, entry, guarded
from search.config import (
    Task,
    apply_overrides,
    as_dict,
    check_config,
    load_exported,
    task_of,
    with_defaults,
)
from search.config.objectives import values_text
from search.data import Splits, splits_of
from search.study import Diagnosed, Role, Tag, outcome_of
from search.tracking import KeptModel, StudyTracker
from search.trial import (
    EpochRecorder,
    FitResult,
    fit_config,
    preflight,
    resolve_auto_lr,
    save_history,
)

log = logging.getLogger("search")


def train_exported(cfg: DictConfig) -> FitResult:
    check_config(cfg)
    source: dict[str, Any] = as_dict(cfg.source) if cfg.source else {}
    splits = splits_of(cfg)
    preflight(cfg, splits)  # the export's builder and data still work: before any run
    tracker = StudyTracker.from_config(cfg)
    tracker.open(parent=False)
    trial = source.get("trial_number", "?")
    tags = {
        Tag.ROLE: Role.RETRAIN,
        Tag.RETRAIN_OF: str(source.get("mlflow_run_id", "")),
        Tag.SOURCE_TRIAL: str(trial),
    }
    run = tracker.start_run(f"retrain t{trial}", tags, as_dict(cfg))
    with run.ended_by_errors():  # Ctrl-C anywhere below leaves the run closed (KILLED)
        log.info(
            f"re-training trial {trial} of {cfg.study_name} on {splits.name} ({splits.sizes()})"
        )
        recorder = EpochRecorder(sink=run.log_epoch)
        try:
            cfg, _ = resolve_auto_lr(cfg, splits)
            result = fit_config(cfg, splits, recorder)
        except Diagnosed as exc:
            run.finish(outcome_of(exc))
            raise HarnessError(f"the re-train {exc}; see MLflow run {run.run_id}") from None
        with tempfile.TemporaryDirectory(prefix="search-retrain-") as tmp:
            OmegaConf.save(cfg, Path(tmp) / "config.yaml")
            title = f"{cfg.study_name} re-train of trial {trial}"
            save_history(recorder.rows, Path(tmp), title=title, metric=task_of(cfg).monitor)
            kept = _kept(cfg, splits, result, str(trial))
            run.finish(outcome_of(None), result.metrics, artifacts_dir=Path(tmp), kept=kept)
    task = task_of(cfg)
    name = task.monitor.removeprefix("val_")
    test = next((f"test_{n}" for n in (name, "accuracy", "loss") if f"test_{n}" in result.metrics))
    log.info(
        f"best {_compared(task, result, source)}, "
        f"{test} {result.metrics[test]:.4f}; MLflow run {run.run_id}"
    )
    return result


def _compared(task: Task, result: FitResult, source: dict[str, Any]) -> str:
    """``val_accuracy 0.9512 (the trial had 0.9512)``, for each objective."""
    before = dict(source.get("values") or {})
    if not before and isinstance(source.get("value"), float):
        before = {task.monitor: source["value"]}
    said = []
    for objective, value in zip(task.objectives, result.values, strict=True):
        had = before.get(objective.name)
        was = f" (the trial had {values_text([had])})" if isinstance(had, float) else ""
        said.append(f"{objective.name} {values_text([value])}{was}")
    return ", ".join(said)


def _kept(cfg: DictConfig, splits: Splits, result: FitResult, trial: str) -> KeptModel | None:
    """The re-trained model, a new version of the study's registered model (tagged with
    the trial it re-trains; never the champion: that is the study's best trial)."""
    if result.model is None or str(cfg.tracking.log_models) == "none":
        return None
    tags = {Tag.STUDY: str(cfg.study_name), Tag.SOURCE_TRIAL: trial, Tag.ROLE: Role.RETRAIN}
    return KeptModel(
        result.model,
        splits.probe("val", 2)[0],
        tags=tags,
        register=str(cfg.study_name),
        value=result.value,
        crown=False,
        step=int(result.metrics.get("best_epoch", 0)),
    )


def train_from(cfg: DictConfig) -> FitResult:
    """Re-train the export ``cfg["from"]`` names, with the command line's overrides on top."""
    exported = with_defaults(load_exported(str(cfg["from"])), cfg)
    return train_exported(apply_overrides(exported, cfg, list(HydraConfig.get().overrides.task)))


@hydra.main(version_base="1.3", config_path="studies", config_name="train")
def main(cfg: DictConfig) -> None:
    guarded(lambda: train_from(cfg))


if __name__ == "__main__":
    entry(main, "train")
