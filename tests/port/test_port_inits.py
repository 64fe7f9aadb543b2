"""`compare_inits` (`state-rosetta port --own-init`): a port's own init against its reference's,
as distributions, on `hk.nets.MLP` ported to Flax NNX."""

from __future__ import annotations

import haiku as hk
import jax
import numpy as np
import pytest
from flax import nnx
from scipy import stats

import shared

FEATURES, HIDDEN, OUT = 64, 256, 3
DATA = {"x": np.ones((1, 8, FEATURES), np.float32)}
REFERENCE = hk.transform(lambda x: hk.nets.MLP([HIDDEN, OUT])(x))
FIRST = "params.mlp/~/linear_0"
ZEROS = nnx.initializers.zeros_init()

TRUNCATED_STD = float(stats.truncnorm(-2, 2).std())
"""Haiku's `TruncatedNormal(stddev)` draws a standard normal cut at +-2, times `stddev`: its
standard deviation is `stddev` times this (0.8796), in closed form."""

STD_RTOL = 0.03
"""16,384 draws estimate a standard deviation within 0.6% (one standard error, 1/sqrt(2n));
the ratio of two such is within 0.8%: 3% is four standard errors."""


class MLP(nnx.Module):
    """The port of `hk.nets.MLP([256, 3])`, with initialisers to choose."""

    def __init__(self, kernel_init=None, bias_init=ZEROS):
        rngs = nnx.Rngs(0)
        widths = [(FEATURES, HIDDEN), (HIDDEN, OUT)]
        self.layers = nnx.List(
            [
                nnx.Linear(
                    n_in,
                    n_out,
                    kernel_init=kernel_init(n_in)
                    if kernel_init
                    else nnx.initializers.lecun_normal(),
                    bias_init=bias_init,
                    rngs=rngs,
                )
                for n_in, n_out in widths
            ]
        )

    def __call__(self, x):
        return self.layers[1](jax.nn.relu(self.layers[0](x)))


def haiku_like(fan_in):  # hk.Linear's default: TruncatedNormal(stddev=1 / sqrt(fan_in))
    return nnx.initializers.truncated_normal(stddev=1 / np.sqrt(fan_in))


@pytest.fixture(scope="module")
def defaults():
    return shared.compare_inits(REFERENCE, MLP(), data=DATA)


def test_haikus_default_linear_init_is_narrower_than_flaxs_lecun_normal(defaults):
    rows = {row.leaf: row for row in defaults.rows}
    first = rows[f"{FIRST}.w"]
    assert not defaults.agree
    assert f"{FIRST}.w" in [row.leaf for row in defaults.differing()]
    assert first.p_value is not None and first.p_value < 1e-6
    # Flax's lecun_normal rescales its truncated normal to 1/sqrt(fan_in); Haiku's does not.
    np.testing.assert_allclose(first.port_std * np.sqrt(FEATURES), 1.0, rtol=STD_RTOL)
    np.testing.assert_allclose(first.ref_std / first.port_std, TRUNCATED_STD, rtol=STD_RTOL)
    assert rows[f"{FIRST}.b"].verdict == "same"  # zeros on both sides


def test_a_port_with_haikus_initialisers_agrees_in_distribution_not_in_values():
    found = shared.compare_inits(REFERENCE, MLP(kernel_init=haiku_like), data=DATA)
    assert found.agree, [(r.leaf, r.p_value) for r in found.differing()]
    assert [r.verdict for r in found.rows].count("same") == 4
    ref = REFERENCE.init(jax.random.key(0), DATA["x"][0])
    assert not np.array_equal(ref["mlp/~/linear_0"]["w"], MLP(haiku_like).layers[0].kernel[...])


def test_a_constant_that_differs_is_named():
    port = MLP(kernel_init=haiku_like, bias_init=nnx.initializers.ones_init())
    found = shared.compare_inits(REFERENCE, port, data=DATA)
    assert [row.leaf for row in found.differing()] == [f"{FIRST}.b", "params.mlp/~/linear_1.b"]
