"""The transfer builder: preprocessing inside the model, freezing, upsampling, offline weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from search.models import build_transfer_net
from search.models.transfer import BackbonePreprocess

TINY_HEAD = (16, 8)


def _backbone(model: keras.Model) -> keras.Model:
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def test_frozen_backbone_trains_only_the_head() -> None:
    model = build_transfer_net((32, 32, 3), 10, weights=None, head=TINY_HEAD)
    assert not _backbone(model).trainable
    names = {v.path.split("/")[0] for v in model.trainable_variables}
    assert names == {"head_1", "head_2", "output"}
    preprocess = model.get_layer("preprocess_input")
    assert isinstance(preprocess, BackbonePreprocess) and preprocess.backbone == "vgg16"
    names = [layer.name for layer in model.layers]
    assert names.index("preprocess_input") < names.index(_backbone(model).name)
    assert model(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 10)


def test_partly_and_fully_unfrozen() -> None:
    last3 = build_transfer_net((32, 32, 3), 10, weights=None, head=TINY_HEAD, trainable_layers=3)
    layers = _backbone(last3).layers
    assert [layer.trainable for layer in layers[-3:]] == [True] * 3
    assert not any(layer.trainable for layer in layers[:-3] if layer.weights)
    full = build_transfer_net((32, 32, 3), 10, weights=None, head=TINY_HEAD, trainable_layers=-1)
    assert all(layer.trainable for layer in _backbone(full).layers)


def test_the_notebook_mistake_and_upsampling_are_expressible() -> None:
    raw = build_transfer_net((32, 32, 3), 10, weights=None, head=TINY_HEAD, preprocess=False)
    assert "preprocess_input" not in {layer.name for layer in raw.layers}
    big = build_transfer_net((32, 32, 3), 10, weights=None, head=TINY_HEAD, input_size=64)
    assert big.get_layer("upsample").output.shape[1:3] == (64, 64)
    assert _backbone(big).input_shape[1:3] == (64, 64)


def test_vgg16_preprocessing_is_caffe_style() -> None:
    pixel = np.array([[[[255.0, 0.0, 0.0]]]], "float32")  # pure red, RGB
    out = keras.ops.convert_to_numpy(BackbonePreprocess("vgg16")(pixel))
    np.testing.assert_allclose(out[0, 0, 0], [-103.939, -116.779, 255.0 - 123.68], rtol=1e-5)


def test_resnet50_builds_with_random_weights() -> None:
    model = build_transfer_net((32, 32, 3), 10, backbone="resnet50", weights=None, head=(8,))
    assert _backbone(model).name.startswith("resnet50")


def test_bad_inputs_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="dataset.image_size=32 dataset.channels=3"):
        build_transfer_net((8, 8, 1), 10, weights=None)
    with pytest.raises(ValueError, match="model.weights: no file at"):
        build_transfer_net((32, 32, 3), 10, weights="/nonexistent/vgg.weights.h5")
    with pytest.raises(ValueError, match="is not one of"):
        build_transfer_net((32, 32, 3), 10, backbone="alexnet", weights=None)

    def offline(**kwargs: object) -> None:
        raise Exception("URL fetch failure on https://example.invalid/vgg16.h5: no network")

    from search.models import transfer

    monkeypatch.setitem(transfer.BACKBONES, "vgg16", (offline, transfer.BACKBONES["vgg16"][1]))
    with pytest.raises(ValueError, match="use model.weights=null"):
        build_transfer_net((32, 32, 3), 10, weights="imagenet")
