"""The learning-rate range test ("search for the right learning rate each time you change
the architecture"), as a command and as ``optimizer.learning_rate: auto`` in a study.

``python -m search.lr_find study=<name> [overrides]``: train the study's model for about
one epoch while the learning rate grows exponentially from ``lr_find.min_lr`` to
``lr_find.max_lr``; plot the smoothed loss against the rate (log x) with the suggestion
marked; log the run (plot + curve as CSV) to the study's MLflow experiment; print the rate.
The suggestion is the rate of lowest smoothed loss divided by ``lr_find.divisor`` (10):
the loss is still falling fast there, well before it shoots up.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import keras
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from search.checks import check_config
from search.cli import entry, guarded
from search.config import as_dict, resolved_copy
from search.data import Splits, splits_from_config
from search.errors import HarnessError
from search.tracking import StudyTracker
from search.training import build_compiled

__all__ = ["LRFinding", "find_learning_rate", "plot_lr_curve", "resolve_auto_lr"]

log = logging.getLogger("search")


@dataclass
class LRFinding:
    """The range test's curve (columns ``lr``, ``loss``, ``smoothed``) and its suggestion."""

    curve: pd.DataFrame
    suggested_lr: float
    seconds: float


def find_learning_rate(cfg: DictConfig, splits: Splits) -> LRFinding:
    """Run the range test on a fresh model of ``cfg`` (seeded as the trial would be)."""
    settings = cfg.get("lr_find") or {}
    min_lr = float(settings.get("min_lr") or 1e-6)
    max_lr = float(settings.get("max_lr") or 10.0)
    if not 0 < min_lr < max_lr:
        raise HarnessError(f"lr_find: need 0 < min_lr < max_lr, got {min_lr} and {max_lr}")
    started = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(cfg.seed))
    probe = resolved_copy(cfg)
    probe.optimizer.learning_rate = min_lr
    model = build_compiled(probe, splits)
    curve = _range_test(
        model,
        splits.x_train,
        splits.y_train,
        batch_size=int(cfg.train.batch_size),
        min_lr=min_lr,
        max_lr=max_lr,
        epochs=float(settings.get("epochs") or 1.0),
        smoothing=float(settings.get("smoothing") or 0.9),
        stop_factor=float(settings.get("stop_factor") or 4.0),
        seed=int(cfg.seed),
    )
    suggested = suggest(curve, float(settings.get("divisor") or 10.0), min_lr)
    keras.backend.clear_session()
    return LRFinding(curve=curve, suggested_lr=suggested, seconds=time.perf_counter() - started)


def _range_test(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    min_lr: float,
    max_lr: float,
    epochs: float,
    smoothing: float,
    stop_factor: float,
    seed: int,
) -> pd.DataFrame:
    steps = max(100, int(math.ceil(len(x) / batch_size * epochs)))  # small sets: wrap around
    order = np.random.default_rng(seed).permutation(len(x))
    rows: list[dict[str, float]] = []
    average, best = 0.0, math.inf
    for step in range(steps):
        lr = min_lr * (max_lr / min_lr) ** (step / (steps - 1))
        model.optimizer.learning_rate.assign(lr)
        start = (step * batch_size) % len(x)
        batch = order[start : start + batch_size]
        loss = float(model.train_on_batch(x[batch], y[batch], return_dict=True)["loss"])
        if not math.isfinite(loss):
            break
        average = smoothing * average + (1 - smoothing) * loss
        smoothed = average / (1 - smoothing ** (step + 1))  # bias-corrected EMA
        rows.append({"lr": lr, "loss": loss, "smoothed": smoothed})
        best = min(best, smoothed)
        if step > 5 and smoothed > stop_factor * best:
            break
    return pd.DataFrame(rows)


def suggest(curve: pd.DataFrame, divisor: float, floor: float) -> float:
    """The rate of lowest smoothed loss, divided by ``divisor`` (never below ``floor``)."""
    if curve.empty:
        raise HarnessError("lr_find: the loss was NaN from the first step; lower lr_find.min_lr")
    at_min = float(curve["lr"].iloc[int(curve["smoothed"].idxmin())])
    return max(at_min / divisor, floor)


def plot_lr_curve(finding: LRFinding, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(finding.curve["lr"], finding.curve["loss"], alpha=0.3, label="loss (batch)")
    ax.plot(finding.curve["lr"], finding.curve["smoothed"], label="loss (smoothed)")
    ax.axvline(finding.suggested_lr, color="tab:red", linestyle="--")
    ax.annotate(
        f"suggested {finding.suggested_lr:.2e}",
        (finding.suggested_lr, float(finding.curve["smoothed"].min())),
        textcoords="offset points",
        xytext=(6, 12),
        color="tab:red",
    )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    top = float(finding.curve["smoothed"].iloc[0]) * 1.5
    ax.set_ylim(max(0.0, float(finding.curve["loss"].min()) * 0.9), top)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def resolve_auto_lr(cfg: DictConfig, splits: Splits) -> tuple[DictConfig, LRFinding | None]:
    """``optimizer.learning_rate: auto`` -> the range test's suggestion for this config."""
    if str(cfg.optimizer.learning_rate) != "auto":
        return cfg, None
    finding = find_learning_rate(cfg, splits)
    out = resolved_copy(cfg)
    out.optimizer.learning_rate = finding.suggested_lr
    return out, finding


def run_lr_find(cfg: DictConfig) -> LRFinding:
    check_config(cfg)
    splits = splits_from_config(cfg.dataset)
    tracker = StudyTracker(str(cfg.tracking_uri), str(cfg.artifact_root), str(cfg.study_name))
    tracker.check()
    log.info(f"LR range test for {cfg.study_name} on {splits.name} ({splits.sizes()})")
    finding = find_learning_rate(cfg, splits)
    tracker.open(parent=False)
    run = tracker.start_run("lr_find", {"search.role": "lr_find"}, as_dict(cfg))
    with tempfile.TemporaryDirectory(prefix="search-lrfind-") as tmp:
        out = Path(tmp)
        finding.curve.to_csv(out / "lr_find.csv", index=False)
        plot_lr_curve(finding, out / "lr_find.png", f"{cfg.study_name}: LR range test")
        run.finish(
            "COMPLETE",
            metrics={"suggested_lr": finding.suggested_lr, "lr_find_seconds": finding.seconds},
            artifacts_dir=out,
        )
    log.info(
        f"suggested learning rate: {finding.suggested_lr:.3g} "
        f"({len(finding.curve)} steps, {finding.seconds:.0f}s; MLflow run {run.run_id})"
    )
    log.info(
        f"use it: python -m search.run study={cfg.study_name} "
        f"optimizer.learning_rate={finding.suggested_lr:.3g}"
    )
    return finding


@hydra.main(version_base="1.3", config_path="../studies", config_name="run")
def main(cfg: DictConfig) -> None:
    guarded(lambda: run_lr_find(cfg))


if __name__ == "__main__":
    entry(main, "run")
