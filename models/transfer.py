"""Transfer learning: an ImageNet backbone (VGG16, ResNet50) with the course's dense head.

The course notebook fed raw 0-255 pixels to a fully trainable VGG16 with no
``preprocess_input`` and a deep ReLU head: it sat at chance (loss 2.3026 = ln 10). Here
the backbone's own ``preprocess_input`` runs inside the model (``preprocess=True``), the
backbone can be frozen or partly unfrozen, and small images can be upsampled first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras

from search.models.registry import register_builder

__all__ = ["BACKBONES", "BackbonePreprocess", "build_transfer_net"]

BACKBONES: dict[str, tuple[Callable[..., keras.Model], Callable[..., Any]]] = {
    "vgg16": (keras.applications.VGG16, keras.applications.vgg16.preprocess_input),
    "resnet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
}


@keras.saving.register_keras_serializable(package="search")
class BackbonePreprocess(keras.layers.Layer):
    """The backbone's ``preprocess_input`` on 0-255 RGB pixels, as a layer of the model."""

    def __init__(self, backbone: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if backbone not in BACKBONES:
            raise ValueError(f"model.backbone {backbone!r} is not one of {', '.join(BACKBONES)}")
        self.backbone = backbone

    def call(self, inputs: Any) -> Any:
        return BACKBONES[self.backbone][1](inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "backbone": self.backbone}


@register_builder("transfer")
def build_transfer_net(
    input_shape: tuple[int, ...],
    num_classes: int,
    backbone: str = "vgg16",
    weights: str | None = "imagenet",
    preprocess: bool = True,
    input_size: int = 32,
    trainable_layers: int = 0,
    head: Sequence[int] = (1024, 512, 256, 128),
    head_activation: str = "relu",
    head_dropout: float = 0.0,
    pooling: str = "avg",
) -> keras.Model:
    """Images in [0, 1] -> x255 -> [resize to ``input_size``] -> [preprocess_input] ->
    backbone -> pooling -> head (Dense [+ Dropout] per width) -> softmax.

    - ``weights``: ``imagenet``, ``None`` (random init) or a local ``.weights.h5`` file.
    - ``trainable_layers``: 0 freezes the backbone, N unfreezes its last N layers, -1 all.
      The backbone always runs in inference mode (its BatchNorm statistics stay put).
    - ``preprocess=False`` recreates the notebook's mistake: raw 0-255 pixels in.
    Returns an uncompiled model.
    """
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            f"transfer models need RGB images, got shape {input_shape}; "
            "set dataset.image_size=32 dataset.channels=3"
        )
    if backbone not in BACKBONES:
        raise ValueError(f"model.backbone {backbone!r} is not one of {', '.join(BACKBONES)}")
    if pooling not in ("avg", "flatten"):
        raise ValueError(f"model.pooling must be avg or flatten, got {pooling!r}")
    if not 0.0 <= head_dropout < 1.0:
        raise ValueError(f"model.head_dropout must be in [0, 1), got {head_dropout}")
    base = _backbone(backbone, weights, input_size)
    _set_trainable(base, trainable_layers)

    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(255.0, name="to_pixels")(inputs)
    if input_size != input_shape[0]:
        x = keras.layers.Resizing(input_size, input_size, name="upsample")(x)
    if preprocess:
        x = BackbonePreprocess(backbone, name="preprocess_input")(x)
    x = base(x, training=False)
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.Flatten
    x = pool(name="pool")(x)
    for i, width in enumerate(head, start=1):
        x = keras.layers.Dense(int(width), activation=head_activation, name=f"head_{i}")(x)
        if head_dropout > 0:
            x = keras.layers.Dropout(head_dropout, name=f"head_dropout_{i}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=f"{backbone}_transfer")


def _backbone(name: str, weights: str | None, input_size: int) -> keras.Model:
    if weights not in (None, "imagenet") and not Path(str(weights)).expanduser().is_file():
        raise ValueError(
            f"model.weights: no file at {weights}; use imagenet, null or a .weights.h5 path"
        )
    factory = BACKBONES[name][0]
    try:
        return factory(include_top=False, weights=weights, input_shape=(input_size, input_size, 3))
    except Exception as exc:
        if weights != "imagenet":
            raise
        raise ValueError(
            f"cannot load ImageNet weights for {name} ({str(exc).splitlines()[0][:160]}); "
            "use model.weights=null (random init) or model.weights=/path/to/file.weights.h5"
        ) from None


def _set_trainable(base: keras.Model, trainable_layers: int) -> None:
    if trainable_layers < -1:
        raise ValueError(f"model.trainable_layers must be -1, 0 or N > 0, got {trainable_layers}")
    base.trainable = trainable_layers != 0
    if trainable_layers > 0:
        for layer in base.layers[: max(0, len(base.layers) - trainable_layers)]:
            layer.trainable = False
