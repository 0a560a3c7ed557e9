"""``python -m search.sync study=<name>``: make MLflow agree with the Optuna study.

Back-fills a run for every finished trial that has none (the MLflow store was unreachable
during it), closes the runs left RUNNING by killed workers (``search.tracking.sync``), and
updates the study's summary on its parent run.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from search.cli import entry, guarded, held, raise_pending
from search.study import load_existing_study, recorded_metric
from search.tracking import StudyTracker, publish_summary, sync_study

log = logging.getLogger("search")


def run_sync(cfg: DictConfig) -> None:
    study = load_existing_study(str(cfg.storage), str(cfg.study_name))
    tracker = StudyTracker.from_config(cfg)
    tracker.check()
    try:  # opening marks the parent run RUNNING: an interrupt closes it KILLED
        tracker.open()
        created, closed = sync_study(study, tracker, recorded_metric(study, cfg.metric))
        raise_pending()
        publish_summary(study, tracker)
    except BaseException:
        with held():
            tracker.close_parent("KILLED")
        raise
    log.info(
        f"study {cfg.study_name}: {len(study.trials)} trials; "
        f"{created} run(s) back-filled, {closed} closed; summary updated on the parent run"
    )


@hydra.main(version_base="1.3", config_path="studies", config_name="run")
def main(cfg: DictConfig) -> None:
    guarded(lambda: run_sync(cfg))


if __name__ == "__main__":
    entry(main, "run")
