"""``python -m search.lr_find study=<name> [overrides]``: the learning-rate range test.

Trains the study's model for about one epoch while the learning rate grows exponentially
(``search.trial.lr_range``), logs the run (``lr_find.png``: the smoothed loss against the
rate, log x, the suggestion marked; ``lr_find.csv``) to the study's MLflow experiment and
prints the suggested rate and the command that uses it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig

from search.cli import entry, guarded, next_command
from search.config import as_dict, check_config
from search.data import splits_of
from search.study import Role, Tag, outcome_of
from search.tracking import StudyTracker
from search.trial import LRFinding, find_learning_rate, write_finding

log = logging.getLogger("search")


def run_lr_find(cfg: DictConfig) -> LRFinding:
    check_config(cfg)
    splits = splits_of(cfg)
    tracker = StudyTracker.from_config(cfg)
    tracker.check()
    log.info(f"LR range test for {cfg.study_name} on {splits.name} ({splits.sizes()})")
    finding = find_learning_rate(cfg, splits)
    tracker.open(parent=False)
    run = tracker.start_run("lr_find", {Tag.ROLE: Role.LR_FIND}, as_dict(cfg))
    with run.ended_by_errors(), tempfile.TemporaryDirectory(prefix="search-lrfind-") as tmp:
        out = Path(tmp)
        write_finding(finding, out, f"{cfg.study_name}: LR range test")
        run.finish(
            outcome_of(None),
            metrics={"suggested_lr": finding.suggested_lr, "lr_find_seconds": finding.seconds},
            artifacts_dir=out,
        )
    log.info(
        f"suggested learning rate: {finding.suggested_lr:.3g} "
        f"({len(finding.curve)} steps, {finding.seconds:.0f}s; MLflow run {run.run_id})"
    )
    rate = f"optimizer.learning_rate={finding.suggested_lr:.3g}"
    log.info(f"use it: {next_command('search.run', cfg, rate)}")
    return finding


@hydra.main(version_base="1.3", config_path="studies", config_name="run")
def main(cfg: DictConfig) -> None:
    guarded(lambda: run_lr_find(cfg))


if __name__ == "__main__":
    entry(main, "run")
