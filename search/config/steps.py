"""A stepped float on its step's decimals: ``0.0 + 3 * 0.1`` is 0.30000000000000004 in
floating point; the harness stores and shows 0.3 (``search.study.samplers.OnStep``, the
grid's values, a trial's sampled config)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution

__all__ = ["on_step"]


def on_step(dist: BaseDistribution, value: Any) -> Any:
    """A stepped float rounded to its step's decimals (``low + 3 * 0.1`` is 0.3, not
    0.30000000000000004); any other value as it is."""
    if not isinstance(dist, FloatDistribution) or dist.step is None:
        return value
    return round(float(value), max(_decimals(dist.step), _decimals(dist.low)))


def _decimals(number: float) -> int:
    exponent = Decimal(repr(float(number))).normalize().as_tuple().exponent
    return max(0, -int(exponent))
