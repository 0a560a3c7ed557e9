"""``python -m search.train from=<best.yaml> [key=value ...]``: train one config, tracked.

The exported file is the whole config; ``key=value`` overrides on the command line apply
on top of it. The run goes to the study's MLflow experiment, tagged as a re-train of the
source trial. Same seed, same machine: the trial's validation accuracy is reproduced.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from search.callbacks import EpochRecorder, TrialDiverged
from search.checks import check_config
from search.cli import entry, guarded
from search.config import as_dict
from search.data import splits_from_config
from search.diagnostics import StuckAtChance
from search.errors import HarnessError, first_line
from search.lr_find import resolve_auto_lr
from search.tracking import StudyTracker
from search.training import FitResult, fit_config, save_history

__all__ = ["load_exported", "train_exported"]

log = logging.getLogger("search")
REQUIRED = (
    "study_name",
    "seed",
    "metric",
    "dataset",
    "model",
    "optimizer",
    "train",
    "tracking_uri",
)
SECTIONS = ("dataset", "model", "optimizer", "train")  # mappings in an exported config


def load_exported(path: str | Path) -> DictConfig:
    """An exported ``best.yaml`` (safe YAML), checked to be a harness config."""
    path = Path(path).expanduser()
    if not path.is_file():
        where = f"{path} is a directory, not a file" if path.is_dir() else f"no file at {path}"
        raise HarnessError(f"from: {where}; give an exported best.yaml")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        raise HarnessError(f"from: {path} is not valid YAML ({_yaml_problem(exc)})") from None
    except (OmegaConfBaseException, ValueError, OSError) as exc:
        raise HarnessError(f"from: {path} is not readable YAML ({first_line(exc)})") from None
    missing = [key for key in REQUIRED if not isinstance(cfg, DictConfig) or key not in cfg]
    if missing:
        raise HarnessError(
            f"from: {path} is not an exported config (missing {', '.join(missing)}); "
            "make one with python -m search.export study=<name>"
        )
    assert isinstance(cfg, DictConfig)
    flat = [
        key
        for key in SECTIONS
        if not OmegaConf.is_dict(OmegaConf.select(cfg, key, throw_on_resolution_failure=False))
    ]
    if flat:
        raise HarnessError(
            f"from: {path} is not an exported config ({flat[0]} is not a mapping); "
            "make one with python -m search.export study=<name>"
        )
    return cfg


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line 2, column 1: expected the node content, but found '<stream end>'``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or first_line(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def apply_overrides(cfg: DictConfig, composed: DictConfig, overrides: list[str]) -> DictConfig:
    """Set each ``key=value`` from the command line (typed by Hydra in ``composed``)."""
    out = cfg.copy()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "from":
            continue
        OmegaConf.update(out, key, OmegaConf.select(composed, key), merge=False)
    return out


def train_exported(cfg: DictConfig) -> FitResult:
    check_config(cfg)
    source: dict[str, Any] = as_dict(cfg.source) if cfg.get("source") else {}
    splits = splits_from_config(cfg.dataset)
    tracker = StudyTracker(str(cfg.tracking_uri), str(cfg.artifact_root), str(cfg.study_name))
    tracker.open(parent=False)
    trial = source.get("trial_number", "?")
    tags = {
        "search.role": "retrain",
        "search.retrain_of": str(source.get("mlflow_run_id", "")),
        "search.source_trial": str(trial),
    }
    run = tracker.start_run(f"retrain t{trial}", tags, as_dict(cfg))
    log.info(f"re-training trial {trial} of {cfg.study_name} on {splits.name} ({splits.sizes()})")
    recorder = EpochRecorder(sink=run.log_epoch)
    try:
        cfg, _ = resolve_auto_lr(cfg, splits)
        result = fit_config(cfg, splits, recorder)
    except BaseException as exc:
        run.finish("FAIL", tags={"error": f"{type(exc).__name__}: {exc}"[:5000]})
        if isinstance(exc, TrialDiverged | StuckAtChance):
            raise HarnessError(f"the re-train {exc}; see MLflow run {run.run_id}") from None
        raise
    with tempfile.TemporaryDirectory(prefix="search-retrain-") as tmp:
        OmegaConf.save(cfg, Path(tmp) / "config.yaml")
        save_history(recorder.rows, Path(tmp), title=f"{cfg.study_name} re-train of trial {trial}")
        run.finish("COMPLETE", metrics=result.metrics, artifacts_dir=Path(tmp))
    before = source.get("value")
    was = f" (the trial had {before:.4f})" if isinstance(before, float) else ""
    log.info(
        f"best {cfg.metric} {result.best_val_accuracy:.4f}{was}, "
        f"test_accuracy {result.metrics['test_accuracy']:.4f}; MLflow run {run.run_id}"
    )
    return result


@hydra.main(version_base="1.3", config_path="../studies", config_name="train")
def main(cfg: DictConfig) -> None:

    def task() -> None:
        exported = load_exported(str(cfg["from"]))
        train_exported(apply_overrides(exported, cfg, list(HydraConfig.get().overrides.task)))

    guarded(task)


if __name__ == "__main__":
    entry(main, "train")
