"""A config as MLflow params, and a trial's run name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["MAX_BATCH", "chunks", "flatten_config", "run_name"]

T = TypeVar("T")
MAX_BATCH = 100  # MLflow accepts at most 100 params or 1000 metrics per log_batch
_SHORT = {"learning_rate": "lr", "batch_norm": "bn", "dropout_rate": "drop", "momentum": "mom"}


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted-key params from a nested config; the search space itself is left out."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if name == "space":
            continue
        if isinstance(value, Mapping):
            out.update(flatten_config(value, prefix=f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def run_name(number: int, sampled: Mapping[str, Any]) -> str:
    """``t007 lr=3.1e-04 bn=1 drop=0.2``: what a trial is, at a glance in the run table."""
    parts = [f"t{number:03d}"]
    for key, value in sampled.items():
        short = _SHORT.get(key.rsplit(".", 1)[-1], key.rsplit(".", 1)[-1])
        parts.append(f"{short}={_fmt(value)}")
    return " ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.2g}" if 1e-3 <= abs(value) < 1e3 or value == 0 else f"{value:.1e}"
    return str(value)


def chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
