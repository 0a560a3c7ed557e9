"""Small helpers between OmegaConf nodes and plain Python."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["as_dict", "resolved_copy"]


def as_dict(node: Any) -> dict[str, Any]:
    """A config mapping as a plain, resolved ``dict`` (string keys)."""
    container = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    if not isinstance(container, dict):
        raise TypeError(f"expected a mapping, got {type(container).__name__}")
    return {str(k): v for k, v in container.items()}


def resolved_copy(cfg: DictConfig) -> DictConfig:
    """A detached copy with every interpolation resolved."""
    out = OmegaConf.create(as_dict(cfg))
    assert isinstance(out, DictConfig)
    return out
