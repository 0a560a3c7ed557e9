"""How many trials a worker trains together (``pack``): a whole number, or ``auto``.

``auto`` packs ``AUTO_PACK`` trials where they can train together and trains them one at a
time, silently, where they cannot: a study whose learning rate is ``auto`` (each trial runs
its own range test first) or that optimizes ``seconds_per_epoch`` (a packed trial's epoch is
its pack's). A number asked for where trials cannot pack is ignored, and the worker says why.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from search.config.objectives import objectives_of

__all__ = ["AUTO_PACK", "ask_size", "pack_size", "places_for", "why_alone"]

AUTO_PACK = 8  # a pack's places with pack=auto: benchmarks/trial_speed.py, docs/performance.md


def why_alone(cfg: DictConfig) -> str:
    """Why this study's trials cannot train in packs; "" when they can."""
    if str(OmegaConf.select(cfg, "optimizer.learning_rate")) == "auto":
        return "each trial finds its own learning rate first"
    metric = OmegaConf.select(cfg, "metric")
    objectives = objectives_of(metric, cfg.direction) if metric is not None else ()
    if any(o.name == "seconds_per_epoch" for o in objectives):
        return "seconds_per_epoch, an objective, would be the pack's epoch"
    return ""


def pack_size(cfg: DictConfig) -> int:
    """The trials a worker asks and trains together (1: one at a time)."""
    asked = OmegaConf.select(cfg, "pack", default=1)
    if why_alone(cfg):
        return 1
    return AUTO_PACK if asked == "auto" else int(asked)


def ask_size(cfg: DictConfig) -> int:
    """The trials an ask takes at most: ``pack_queue`` per place of a pack (1: one at a
    time); a pack trains them on ``places_for`` places, a waiting trial taking the place
    of one that stopped."""
    size = pack_size(cfg)
    return size * int(OmegaConf.select(cfg, "pack_queue", default=1)) if size > 1 else 1


def places_for(cfg: DictConfig, trials: int) -> int:
    """A pack's places for ``trials`` asked together: one per ``pack_queue`` of them, at
    most ``pack_size``, so each place trains about ``pack_queue`` trials one after another
    (a place idles once its trials are done; fewer places idle less, more run each step at
    less cost per trial)."""
    queue = int(OmegaConf.select(cfg, "pack_queue", default=1))
    return max(1, min(pack_size(cfg), -(-trials // queue)))
