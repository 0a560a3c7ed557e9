"""TensorFlow's side of the device plan (``search.config.devices``): how many GPUs it sees;
a worker process's GPU made its only one (``use_gpu``), memory growth on (TensorFlow
otherwise takes nearly all of a GPU's memory for the first process that touches it); and in
``search.run``'s own process (a notebook's kernel too), every GPU kept visible with memory
growth on and its trials placed on the plan's GPU (``on_gpu``), so that a later call in the
same kernel can choose another. Visibility and memory growth must be set before
TensorFlow starts on a GPU: ``search.run`` plans first thing, each worker process applies
its GPU before it loads data or builds a model."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["on_gpu", "use_gpu", "visible_gpus"]

log = logging.getLogger("search")


def _config() -> Any:
    import tensorflow as tf

    return tf.config


def visible_gpus() -> int:
    """How many GPUs TensorFlow sees on this machine (starts nothing on them)."""
    return len(_config().list_physical_devices("GPU"))


@contextlib.contextmanager
def on_gpu(index: int | None) -> Iterator[None]:
    """In this process, with every GPU visible: what runs in the block runs on GPU
    ``index`` (None: where TensorFlow puts it), memory growth on for each GPU."""
    config = _config()
    gpus = config.list_physical_devices("GPU")
    for gpu in gpus:
        with contextlib.suppress(RuntimeError, ValueError):  # set once, before TF started
            config.experimental.set_memory_growth(gpu, True)
    if index is None or not gpus:
        yield
        return
    import tensorflow as tf

    with tf.device(f"/GPU:{index}"):
        yield


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
