"""Which GPUs a study trains on and how many worker processes share it (``devices``,
``workers``).

``devices``: ``auto`` (every GPU TensorFlow sees; none: the CPU), ``none`` (the CPU even
where there are GPUs; also ``[]``) or a list of GPU indices (``[0, 2]``). ``workers``:
``auto`` (one per GPU in use, 1 on the CPU) or a number. Worker ``i`` trains on GPU
``gpus[i % len(gpus)]``: more workers than GPUs share them (memory growth is on, so each
takes what it uses). The plan is made from the GPUs the machine has
(``search.trial.devices`` asks TensorFlow), by ``search.run`` and again by each worker
process (the config keeps ``devices`` as given: an export re-trains on another machine),
and applied in each worker before TensorFlow starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig

from search.cli.errors import HarnessError

__all__ = ["DevicePlan", "check_devices", "plan_devices"]

_WORDS = ("auto", "none")


@dataclass(frozen=True)
class DevicePlan:
    """``workers`` processes; ``gpus``: the GPU indices they use (empty: the CPU)."""

    workers: int
    gpus: tuple[int, ...] = ()

    def gpu_of(self, worker: int) -> int | None:
        """The GPU worker ``worker`` trains on (None: the CPU)."""
        return self.gpus[worker % len(self.gpus)] if self.gpus else None

    def said(self) -> str:
        """One line for the log: what trains where."""
        if not self.gpus:
            return ""
        shared = " (sharing them, memory growth on)" if self.workers > len(self.gpus) else ""
        one = "GPU" if len(self.gpus) == 1 else "GPUs"
        workers = "1 worker" if self.workers == 1 else f"{self.workers} workers"
        return f"{workers} on {one} {', '.join(str(g) for g in self.gpus)}{shared}"


def check_devices(cfg: DictConfig) -> None:
    """``devices`` and ``workers`` are of a kind the plan understands (before anything)."""
    workers = cfg.workers
    if workers != "auto" and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise HarnessError(
            f"workers must be a positive whole number or auto (one per GPU), got {workers!r}"
        )
    _indices(cfg.devices)


def _indices(devices: object) -> tuple[int, ...] | None:
    """The GPU indices a ``devices`` list names; None for ``auto``; () for ``none``."""
    if devices in _WORDS or devices is None:
        return None if devices == "auto" else ()
    items = list(devices) if isinstance(devices, ListConfig | list | tuple) else None
    if items == []:
        return ()  # none
    if (
        items is None
        or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in items)
        or len(set(items)) != len(items)
    ):
        raise HarnessError(
            f"devices must be auto, none or a list of GPU indices like [0,1], got {devices!r}"
        )
    return tuple(items)


def plan_devices(devices: object, workers: object, visible: int) -> DevicePlan:
    """The plan for a machine whose TensorFlow sees ``visible`` GPUs (numbered from 0)."""
    named = _indices(devices)
    gpus = tuple(range(visible)) if named is None else named
    missing = [i for i in gpus if i >= visible]
    if missing:
        seen = f"{visible} GPU{'s' if visible != 1 else ''}" if visible else "no GPU"
        listed = f" ({', '.join(str(i) for i in range(visible))})" if visible else ""
        raise HarnessError(
            f"devices: GPU {missing[0]} is not there: TensorFlow sees {seen}{listed} on this "
            "machine; use devices=auto, or none for the CPU"
        )
    count = max(1, len(gpus)) if workers == "auto" else int(str(workers))
    used = gpus if count >= len(gpus) else gpus[:count]
    return DevicePlan(count, used)
