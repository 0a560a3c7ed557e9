"""The learning-rate range test ("search for the right learning rate each time you change
the architecture"): train a fresh model for about one epoch while the learning rate grows
exponentially from ``lr_find.min_lr`` to ``lr_find.max_lr``; the suggestion is the rate of
lowest smoothed loss divided by ``lr_find.divisor`` (the loss is still falling fast there,
well before it shoots up). Used by ``python -m search.lr_find`` and by
``optimizer.learning_rate: auto`` in a study (every trial tests its own model).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import pandas as pd
from omegaconf import DictConfig

from search.cli.errors import HarnessError
from search.config.compose import resolved_copy
from search.data.splits import Splits
from search.trial.build import build_compiled
from search.trial.traces import TRACED, start_fresh

__all__ = [
    "LRFinding",
    "find_learning_rate",
    "plot_lr_curve",
    "resolve_auto_lr",
    "suggest",
    "write_finding",
]


@dataclass
class LRFinding:
    """The range test's curve (columns ``lr``, ``loss``, ``smoothed``) and its suggestion."""

    curve: pd.DataFrame
    suggested_lr: float
    seconds: float


def find_learning_rate(cfg: DictConfig, splits: Splits) -> LRFinding:
    """Run the range test on a fresh model of ``cfg`` (seeded as the trial would be)."""
    settings = cfg.lr_find
    min_lr, max_lr = float(settings.min_lr), float(settings.max_lr)
    if not 0 < min_lr < max_lr:
        raise HarnessError(f"lr_find: need 0 < min_lr < max_lr, got {min_lr} and {max_lr}")
    started = time.perf_counter()
    start_fresh(int(cfg.seed), keep_caches=len(TRACED) > 0)  # the kept models' graphs stay
    probe = resolved_copy(cfg)
    probe.optimizer.learning_rate = min_lr
    model = build_compiled(probe, splits)
    batch_size = int(cfg.train.batch_size)
    curve = _range_test(
        model,
        splits.training_batches(batch_size, int(cfg.seed)),
        steps=max(100, int(math.ceil(splits.n_train / batch_size * float(settings.epochs)))),
        min_lr=min_lr,
        max_lr=max_lr,
        smoothing=float(settings.smoothing),
        stop_factor=float(settings.stop_factor),
    )
    suggested = suggest(curve, float(settings.divisor), min_lr)
    return LRFinding(curve=curve, suggested_lr=suggested, seconds=time.perf_counter() - started)


def _range_test(
    model: keras.Model,
    batches: Iterator[tuple[Any, Any]],
    steps: int,
    min_lr: float,
    max_lr: float,
    smoothing: float,
    stop_factor: float,
) -> pd.DataFrame:
    """At least 100 steps: a small training set wraps around."""
    rows: list[dict[str, float]] = []
    average, best = 0.0, math.inf
    for step in range(steps):
        lr = min_lr * (max_lr / min_lr) ** (step / (steps - 1))
        model.optimizer.learning_rate.assign(lr)
        x, y = next(batches)
        loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
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


def write_finding(finding: LRFinding, out_dir: Path, title: str) -> None:
    """``lr_find.csv`` (the curve) and ``lr_find.png`` (the plot) into ``out_dir``."""
    finding.curve.to_csv(out_dir / "lr_find.csv", index=False)
    plot_lr_curve(finding, out_dir / "lr_find.png", title)
