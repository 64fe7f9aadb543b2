"""`shared.check_port` on models that ship in the pinned packages, each ported by hand to
another framework (the port is this file's; the glue is the lines marked `# glue`).

Slow: each trains two real models in lockstep.
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import shared

pytestmark = pytest.mark.slow


def mse(out, batch):
    return jnp.mean((out - batch["y"]) ** 2)


def xent(logits, batch):
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits), batch["label"][:, None], axis=1)
    return -jnp.mean(picked)


# eqx.nn.MLP -> Linen: Equinox's (out, in) weights against Linen's (in, out) kernels.


class LinenMLP(nn.Module):
    """`eqx.nn.MLP(4, 3, width_size=16, depth=2)` in Linen (relu, no final activation)."""

    activation: object = jax.nn.relu

    @nn.compact
    def __call__(self, x):
        x = jax.nn.relu(nn.Dense(16)(x))
        x = self.activation(nn.Dense(16)(x))
        return nn.Dense(3)(x)


def _regression(steps=5):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((steps, 8, 4)).astype(np.float32)
    return {"x": x, "y": np.sin(x[..., :3]).astype(np.float32)}


# Measured: the two programs differ (Equinox's per-example matvec under vmap against
# Linen's batched matmul), and the loss is 1 ULP apart at step 1; 4 ULP leaves room.
MLP_TOLERANCE = shared.parse_tolerance("4ulp", reason="vmap'd matvec against a batched matmul")


def test_eqx_nn_mlp_ported_to_linen_agrees_with_the_layouts_transposed():
    reference = eqx.nn.MLP(4, 3, 16, 2, key=jax.random.key(0))  # glue
    result = shared.check_port(
        reference, LinenMLP(), data=_regression(), loss=mse, tolerance=MLP_TOLERANCE
    )  # glue
    assert result.agree, result.errors
    aligned = {ref: port for ref, port, _ in result.config["alignment"]}
    assert aligned["params.layers.0.weight"] == "params.Dense_0.kernel"
    assert aligned["params.layers.2.bias"] == "params.Dense_2.bias"


def test_eqx_nn_mlp_port_with_a_wrong_activation_is_found_at_step_one():
    reference = eqx.nn.MLP(4, 3, 16, 2, key=jax.random.key(0))
    with pytest.raises(AssertionError, match=r"at step 1, loss: "):
        shared.assert_port(
            reference,
            LinenMLP(activation=jax.nn.gelu),
            data=_regression(),
            loss=mse,
            tolerance=MLP_TOLERANCE,
        )


# hk.nets.ResNet (ResNet-18 layout, tiny widths) -> Linen with its stock nn.BatchNorm.

RESNET = dict(
    blocks_per_group=(2, 2, 2, 2),
    bottleneck=False,
    channels_per_group=(4, 8, 8, 16),
    use_projection=(False, True, True, True),
    initial_conv_config={"output_channels": 4},
)


class Block(nn.Module):
    """Haiku's `BlockV1` without a bottleneck: conv-bn-relu, conv-bn, the shortcut, relu."""

    channels: int
    stride: int
    projection: bool
    eps: float

    @nn.compact
    def __call__(self, x, train):
        def bn():
            return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=self.eps)

        def conv(k, s):
            return nn.Conv(self.channels, (k, k), (s, s), use_bias=False, padding="SAME")

        shortcut = bn()(conv(1, self.stride)(x)) if self.projection else x
        y = nn.relu(bn()(conv(3, self.stride)(x)))
        y = bn()(conv(3, 1)(y))
        return nn.relu(y + shortcut)


class LinenResNet(nn.Module):
    eps: float = 1e-5  # Haiku's BatchNorm epsilon

    @nn.compact
    def __call__(self, x, train):
        x = nn.Conv(4, (7, 7), (2, 2), use_bias=False, padding="SAME")(x)
        bn = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=self.eps)
        x = nn.max_pool(nn.relu(bn(x)), (3, 3), (2, 2), padding="SAME")
        for group, (channels, projection) in enumerate(
            zip((4, 8, 8, 16), RESNET["use_projection"], strict=True)
        ):
            for block in range(2):
                stride = 2 if group and not block else 1
                x = Block(channels, stride, projection and not block, self.eps)(x, train)
        return nn.Dense(5)(jnp.mean(x, axis=(1, 2)))


def _images(steps=2):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, 4, 8, 8, 3)).astype(np.float32)
    return {"x": x, "label": rng.integers(0, 5, (steps, 4)).astype(np.int32)}


def _resnet():
    def forward(x, is_training):  # glue
        return hk.nets.ResNet(num_classes=5, **RESNET)(x, is_training=is_training)  # glue

    return shared.wrap(hk.transform_with_state(forward), train_arg="is_training")  # glue


def test_hk_nets_resnet_against_stock_linen_batchnorm_compares_params_and_reports_the_stats():
    port = shared.wrap(LinenResNet(), train_arg="train")  # glue
    result = shared.check_port(_resnet(), port, data=_images(), loss=xent)  # glue
    aligned = [row for row in result.config["alignment"] if row[0].startswith("params.")]
    assert len(aligned) == 62  # 20 convs and 20 BatchNorms (scale, offset), the logits layer
    reshaped = [row for row in aligned if "reshaped" in row[2]]
    assert len(reshaped) == 40  # Haiku's (1, 1, 1, C) scale and offset against (C,)
    (report,) = [a for a in result.analyses if a.key == "not_comparable"]
    ((ref_stats, port_stats, reason),) = report.rows
    assert ref_stats.count("_ema.") == 20 * 6 and port_stats.count("batch_stats.") == 20 * 2
    assert "zero-debiased" in reason and "no debiasing" in reason
    (pair,) = result.pairs
    # The params agree at step 1 bitwise; Linen's fast variance against Haiku's may part
    # them by rounding afterwards (measured: 4 ULP in a conv weight at step 2).
    assert pair.first_divergence is None or pair.first_divergence.step >= 2


def test_hk_nets_resnet_port_with_a_wrong_epsilon_is_found_at_step_one():
    port = shared.wrap(LinenResNet(eps=1e-3), train_arg="train")
    # Measured: the lockstep names step 1 and, first, the logits layer's weight.
    with pytest.raises(AssertionError, match=r"in lockstep .* at step 1, params\."):
        shared.assert_port(_resnet(), port, data=_images(), loss=xent)


# A Keras Sequential with BatchNormalization -> NNX with Keras's BatchNorm settings.


class NNXDenseBn(nnx.Module):
    """Dense -> BatchNormalization -> relu -> Dense, with Keras's epsilon and two-pass
    variance (Flax's defaults are 1e-5 and the fast variance)."""

    def __init__(self, rngs, momentum=0.99):
        self.dense1 = nnx.Linear(4, 16, rngs=rngs)
        self.bn = nnx.BatchNorm(
            16, momentum=momentum, epsilon=1e-3, use_fast_variance=False, rngs=rngs
        )
        self.dense2 = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.dense2(jax.nn.relu(self.bn(self.dense1(x))))


def _keras_sequential():
    import keras  # impl_keras (imported by check_port) selects the JAX backend first

    layers = keras.layers
    keras.utils.clear_session()  # layer names from 0 again: "batch_normalization"
    keras.utils.set_random_seed(0)
    return keras.Sequential(  # glue
        [
            keras.Input((4,)),
            layers.Dense(16),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dense(3),
        ]
    )


# Measured: the Dense bias right before BatchNorm has a true gradient of zero, and its
# computed one is rounding noise (+-1.5e-9 at step 1, opposite signs in the two), which no
# ULP bound holds; every other leaf is within 1 ULP. An absolute 1e-6 holds over 5 steps.
KERAS_TOLERANCE = shared.parse_tolerance(
    "1e-6", reason="a bias before BatchNorm: zero true gradient, rounding-noise updates"
)


def test_a_keras_sequential_with_batchnorm_ported_to_nnx_agrees_stats_included():
    import impl_keras  # noqa: F401  (the JAX backend, before keras)

    result = shared.check_port(
        _keras_sequential(),
        NNXDenseBn(nnx.Rngs(0)),
        data=_regression(),
        loss=mse,
        tolerance=KERAS_TOLERANCE,
    )  # glue
    assert result.agree, result.errors
    aligned = {ref: port for ref, port, _ in result.config["alignment"]}
    assert aligned["state.batch_normalization.moving_variance"] == "state.bn.var"
    assert aligned["params.batch_normalization.gamma"] == "params.bn.scale"


def test_a_keras_port_with_the_wrong_momentum_is_found_at_step_one_in_the_moving_mean():
    import impl_keras  # noqa: F401

    with pytest.raises(
        AssertionError, match=r"at step 1, state\.batch_normalization(_\d+)?\.moving_mean"
    ):
        shared.assert_port(
            _keras_sequential(),
            NNXDenseBn(nnx.Rngs(0), momentum=0.9),
            data=_regression(),
            loss=mse,
            tolerance=KERAS_TOLERANCE,
        )


# An NNX model with nnx.BatchNorm and nnx.Dropout -> Linen, the step's key to both dropouts.


class NNXBnDropout(nnx.Module):
    def __init__(self, rngs):
        self.dense1 = nnx.Linear(4, 16, rngs=rngs)
        self.bn = nnx.BatchNorm(16, rngs=rngs)
        self.dropout = nnx.Dropout(0.2)  # no stream: the key comes with each call
        self.dense2 = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x, *, key=None):
        x = jax.nn.relu(self.bn(self.dense1(x)))
        return self.dense2(self.dropout(x, rngs=key))


class LinenBnDropout(nn.Module):
    rate: float = 0.2

    @nn.compact
    def __call__(self, x, train, key=None):
        x = jax.nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(16)(x)))
        x = nn.Dropout(self.rate, deterministic=not train)(x, rng=key)  # the raw key
        return nn.Dense(3)(x)


def _bn_dropout(rate):
    reference = shared.wrap(NNXBnDropout(nnx.Rngs(0)), key_arg="key")  # glue
    port = shared.wrap(LinenBnDropout(rate), train_arg="train", key_arg="key")  # glue
    return reference, port


def test_an_nnx_model_with_batchnorm_and_dropout_ported_to_linen_is_bitwise_equal():
    reference, port = _bn_dropout(0.2)
    result = shared.check_port(reference, port, data=_regression(), loss=mse, random=True)  # glue
    assert result.agree, result.errors
    assert all(pair.bitwise for pair in result.pairs)
    aligned = {ref: port for ref, port, _ in result.config["alignment"]}
    assert aligned["state.bn.var"] == "state.batch_stats.BatchNorm_0.var"


def test_an_nnx_dropout_port_with_the_wrong_rate_is_found_at_step_one():
    reference, port = _bn_dropout(0.1)
    with pytest.raises(AssertionError, match=r"at step 1, loss: "):
        shared.assert_port(reference, port, data=_regression(), loss=mse, random=True)
