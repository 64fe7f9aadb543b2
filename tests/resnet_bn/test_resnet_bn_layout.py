"""resnet-bn canonical weights: bitwise round trips, and each framework's layout conversion
checked against an independent forward pass on the canonical HWIO weights."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tree_equal

import shared
from shared.models import resnet_bn
from shared.models.mlp_bn import load_digits_split

FRAMEWORKS = list(shared.implementations("resnet-bn"))
CONFIG = resnet_bn.ResNetBnConfig(channels=(3, 5))  # small, and no two sizes alike


@functools.cache
def make(framework: str) -> shared.Implementation:
    """One implementation per framework for the module (building Equinox's and Keras's
    initialises every layer eagerly: seconds)."""
    return shared.make(framework, CONFIG, "resnet-bn")


def random_canonical(config: resnet_bn.ResNetBnConfig, seed: int = 0):
    """Arbitrary float32 values of the canonical shapes (positive variances): kernels with no
    symmetry, so that a transposed or flipped kernel gives other outputs."""
    rng = np.random.default_rng(seed)
    shapes_p, shapes_s = config.shapes()
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes_p.items()}
    state = {
        k: (rng.uniform(0.5, 2.0, s) if k.endswith(".var") else rng.standard_normal(s))
        for k, s in shapes_s.items()
    }
    return params, {k: v.astype(np.float32) for k, v in state.items()}


def reference_logits(params, state, x, config: resnet_bn.ResNetBnConfig, epsilon: float):
    """The eval-mode forward pass written from the canonical names alone: NHWC images, HWIO
    kernels through `jax.lax.conv_general_dilated` with XLA's "SAME" padding, BatchNorm with
    the running statistics, in float64 NumPy after each convolution."""

    def conv(h, name, stride):
        out = jax.lax.conv_general_dilated(
            jnp.asarray(h, jnp.float32),
            jnp.asarray(params[f"{name}.kernel"]),
            (stride, stride),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return np.asarray(out, np.float64)

    def bn(h, name):
        mean, var = state[f"{name}.mean"], state[f"{name}.var"]
        return (h - mean) / np.sqrt(var + epsilon) * params[f"{name}.scale"] + params[
            f"{name}.bias"
        ]

    relu = lambda h: np.maximum(h, 0.0)  # noqa: E731
    h = np.asarray(x, np.float64).reshape(-1, config.size, config.size, 1)
    h = relu(bn(conv(h, "stem.conv", 1), "stem.bn"))
    for stage, stride in (("stage1", 1), ("stage2", 2)):
        for i, block in enumerate(resnet_bn.BLOCKS):
            name, s = f"{stage}.{block}", stride if i == 0 else 1
            y = relu(bn(conv(h, f"{name}.conv1", s), f"{name}.bn1"))
            y = bn(conv(y, f"{name}.conv2", 1), f"{name}.bn2")
            if f"{name}.proj.kernel" in params:
                h = bn(conv(h, f"{name}.proj", s), f"{name}.proj_bn")
            h = relu(h + y)
    return h.mean(axis=(1, 2)) @ params["head.kernel"] + params["head.bias"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_canonical_round_trip_is_bitwise_and_layouts_match_lax_conv(framework):
    impl = make(framework)
    params, state = random_canonical(CONFIG)
    native = impl.from_canonical(params, state)
    back_p, back_s = impl.to_canonical(*native)
    assert tree_equal({k: np.asarray(v) for k, v in back_p.items()}, params)
    assert tree_equal({k: np.asarray(v) for k, v in back_s.items()}, state)
    # The conversion is the layout: the framework's eval output on the converted weights is
    # the reference's on the canonical ones. A kernel left OIHW, transposed as WHIO, or a
    # stride-2 convolution padded (1, 1) instead of "SAME"'s (0, 1) is off by O(1).
    x = load_digits_split().x_test[:5]
    logits, _ = jax.jit(lambda p, s, x: impl.apply(p, s, x, train=False))(*native, x)
    expected = reference_logits(params, state, x, CONFIG, CONFIG.epsilon)
    # float32 convolutions and BatchNorm against float64 BatchNorm on random O(1) weights,
    # whose logits are O(10): measured up to 2e-5 relative.
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=2e-4, atol=2e-4)


def test_native_layouts_are_the_documented_ones():
    """Equinox's kernels are OIHW, Haiku's BatchNorm vectors (1, 1, 1, C); the others keep
    the canonical HWIO and (C,)."""
    params, state = random_canonical(CONFIG)
    kernel = params["stage2.block0.conv1.kernel"]  # (3, 3, 3, 5) HWIO
    eq_params, _ = make("equinox").from_canonical(params, state)
    weight = np.asarray(eq_params.stage2.block0.conv1.weight)
    assert weight.shape == (5, 3, 3, 3)
    np.testing.assert_array_equal(weight[4, 1, 2, 0], kernel[2, 0, 1, 4])  # [o, i, h, w]
    hk_params, hk_state = make("haiku").from_canonical(params, state)
    assert hk_params["resnet_bn/stem/bn"]["scale"].shape == (1, 1, 1, 3)
    assert hk_state["resnet_bn/stage2/block0/proj_bn/~/var_ema"]["average"].shape == (1, 1, 1, 5)


def test_same_padding_with_stride_2_is_not_padding_1():
    """The trap the aligned model avoids: on an even input, "SAME" with stride 2 pads (0, 1),
    so an explicit padding=1 gives other outputs (what an Equinox or Flax user writing
    padding=1 would get against Keras's "same")."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, 8, 8, 1)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 1, 1)), jnp.float32)
    dims = ("NHWC", "HWIO", "NHWC")
    same = jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=dims)
    low_high = jax.lax.conv_general_dilated(x, w, (2, 2), ((0, 1), (0, 1)), dimension_numbers=dims)
    one = jax.lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=dims)
    assert same.shape == one.shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(same, low_high)
    assert np.max(np.abs(np.asarray(same) - np.asarray(one))) > 0.1


def test_a_kernel_in_another_layout_is_refused_by_name():
    """An OIHW kernel handed over as canonical has the right size and the wrong shape: the
    conversion names the entry instead of reshaping it (stage 2: 3 in, 5 out, so OIHW is
    not HWIO's shape)."""
    params, state = random_canonical(CONFIG)
    params["stage2.block0.conv1.kernel"] = np.transpose(
        params["stage2.block0.conv1.kernel"], (3, 2, 0, 1)
    )
    with pytest.raises(ValueError, match=r"'stage2\.block0\.conv1\.kernel' has shape"):
        make("flax_nnx").from_canonical(params, state)


def test_keras_refuses_a_data_parallel_config():
    """Keras's synchronised BatchNorm does not exist on the JAX backend: refused, as for
    mlp-bn, instead of keeping each replica's own statistics silently."""
    config = resnet_bn.ResNetBnConfig(axis_name="data")
    with pytest.raises(ValueError, match="synchronized=True"):
        shared.make("keras", config, "resnet-bn")
