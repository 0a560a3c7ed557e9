"""``python -m search.report``: the Hydra entry point (the work is in ``search.report.command``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from search.cli import entry, guarded
from search.report.command import run_report


@hydra.main(version_base="1.3", config_path="../studies", config_name="report")
def main(cfg: DictConfig) -> None:
    guarded(lambda: run_report(cfg))


if __name__ == "__main__":
    entry(main, "report")
