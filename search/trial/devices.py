"""TensorFlow's side of the device plan (``search.config.devices``): how many GPUs it sees,
and one process's GPU made its only one, with memory growth on (TensorFlow otherwise takes
nearly all of a GPU's memory for the first process that touches it). Both must happen
before TensorFlow starts on a GPU: ``search.run`` plans first thing, each worker process
applies its GPU before it loads data or builds a model."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["use_gpu", "visible_gpus"]

log = logging.getLogger("search")


def _config() -> Any:
    import tensorflow as tf

    return tf.config


def visible_gpus() -> int:
    """How many GPUs TensorFlow sees on this machine (starts nothing on them)."""
    return len(_config().list_physical_devices("GPU"))


def use_gpu(index: int | None) -> None:
    """This process trains on GPU ``index`` alone (None: on the CPU, no GPU visible), its
    memory grown as needed."""
    config = _config()
    gpus = config.list_physical_devices("GPU")
    if not gpus:
        return
    chosen = [] if index is None else [gpus[index]]
    try:
        config.set_visible_devices(chosen, "GPU")
        for gpu in chosen:
            config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as exc:  # TensorFlow already started on its GPUs in this process
        log.warning(f"note: could not choose the GPU for this process ({exc})")
