"""Model builders and optimizers: plain functions, no Optuna or MLflow."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from search.models import build_dense_net, build_model, make_optimizer


def _layers(model: keras.Model, kind: type) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_course_net_is_20_by_100_elu_he() -> None:
    model = build_dense_net((32, 32, 3), 10)
    dense = _layers(model, keras.layers.Dense)
    assert len(dense) == 21  # 20 hidden + softmax output
    assert all(layer.units == 100 for layer in dense[:-1]) and dense[-1].units == 10
    assert isinstance(dense[0].kernel_initializer, keras.initializers.HeNormal)
    assert {layer.activation.__name__ for layer in _layers(model, keras.layers.Activation)} == {
        "elu"
    }
    assert not _layers(model, keras.layers.BatchNormalization)
    assert model.output_shape == (None, 10)


def test_batch_norm_and_dropout_variants() -> None:
    model = build_dense_net((8, 8, 1), 10, depth=4, width=8, batch_norm=True, dropout_rate=0.2)
    assert len(_layers(model, keras.layers.BatchNormalization)) == 4
    assert len(_layers(model, keras.layers.Dropout)) == 4
    assert not any(layer.use_bias for layer in _layers(model, keras.layers.Dense)[:-1])
    probs = model(np.zeros((3, 8, 8, 1), "float32")).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_registry_and_bad_arguments() -> None:
    model = build_model("dense", (8, 8, 1), 10, depth=2, width=4)
    assert model.count_params() == (64 * 4 + 4) + (4 * 4 + 4) + (4 * 10 + 10)
    assert [layer.name for layer in _layers(model, keras.layers.Dense)] == [
        "dense_1",
        "dense_2",
        "output",
    ]
    with pytest.raises(ValueError, match="unknown model.builder 'cnn'"):
        build_model("cnn", (8, 8, 1), 10)
    with pytest.raises(ValueError, match="dropout_rate"):
        build_dense_net((8, 8, 1), 10, dropout_rate=1.0)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", keras.optimizers.SGD),
        ("adam", keras.optimizers.Adam),
        ("nadam", keras.optimizers.Nadam),
        ("rmsprop", keras.optimizers.RMSprop),
        ("adamw", keras.optimizers.AdamW),
    ],
)
def test_optimizers(name: str, cls: type) -> None:
    opt = make_optimizer(name, 0.01, momentum=0.9, nesterov=True)
    assert isinstance(opt, cls)
    assert float(opt.learning_rate) == pytest.approx(0.01)
    if name == "sgd":
        assert opt.momentum == 0.9 and opt.nesterov is True
    if name == "rmsprop":
        assert opt.momentum == 0.9


def test_optimizer_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lbfgs", 0.1)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        make_optimizer("sgd", 0.0)


@pytest.mark.parametrize("activation", ["elu", "selu", "relu", "leaky_relu", "tanh", "sigmoid"])
def test_every_course_activation_builds_and_predicts(activation: str) -> None:
    model = build_dense_net((8, 8, 1), 10, depth=2, width=8, activation=activation)
    assert model(np.ones((2, 8, 8, 1), "float32")).shape == (2, 10)
    activations = _layers(model, keras.layers.Activation)
    assert [layer.activation.__name__ for layer in activations] == [activation] * 2


def test_constant_initializer_puts_the_same_value_everywhere() -> None:
    model = build_dense_net((8, 8, 1), 10, depth=3, width=8, initializer="constant")
    kernel = model.get_layer("dense_2").get_weights()[0]
    np.testing.assert_allclose(kernel, 0.05, rtol=1e-6)  # model.constant_value's default
    hidden = keras.Model(model.input, model.get_layer("elu_3").output)
    out = hidden(np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")).numpy()
    assert np.all(out > 0)  # positive inputs, positive weights, zero bias
    assert np.allclose(out, out[:, :1])  # every unit of a layer computes the same thing


def test_selu_variant_standardises_with_training_stats_and_uses_alpha_dropout() -> None:
    mean, variance = np.full(64, 0.5, "float32"), np.full(64, 0.04, "float32")
    model = build_dense_net(
        (8, 8, 1),
        10,
        depth=2,
        width=8,
        activation="selu",
        initializer="lecun_normal",
        standardize=True,
        input_stats=(mean, variance),
        dropout="alpha",
        dropout_rate=0.1,
    )
    norm = keras.Model(model.input, model.get_layer("standardize").output)
    out = norm(np.full((1, 8, 8, 1), 0.7, "float32")).numpy()
    np.testing.assert_allclose(out, 1.0, rtol=1e-4)  # (0.7 - 0.5) / 0.2
    assert len(_layers(model, keras.layers.AlphaDropout)) == 2
    with pytest.raises(ValueError, match="needs input_stats"):
        build_dense_net((8, 8, 1), 10, standardize=True)


def test_input_batch_norm_and_unknown_choices() -> None:
    model = build_dense_net((8, 8, 1), 10, depth=2, width=8, input_batch_norm=True)
    assert isinstance(model.get_layer("bn_input"), keras.layers.BatchNormalization)
    assert [layer.name for layer in model.layers[:4]] == ["image", "flatten", "bn_input", "dense_1"]
    assert len(_layers(model, keras.layers.BatchNormalization)) == 1
    for kwargs in ({"activation": "swish"}, {"initializer": "zeros"}, {"dropout": "gaussian"}):
        with pytest.raises(ValueError, match="is not one of"):
            build_dense_net((8, 8, 1), 10, **kwargs)  # type: ignore[arg-type]
