"""`shared.check_port` on a model that ships in Haiku: `hk.nets.MLP`, ported to Flax NNX.

The glue besides the port is the transformed function, the data and the loss (3 lines);
the alignment of `mlp/~/linear_0.w` with `layers.0.kernel` and the transplant of Haiku's
init into the port are the tool's.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import shared


class MLP(nnx.Module):
    """The port: `hk.nets.MLP([16, 16, 3])` in NNX (relu between the layers, not after)."""

    def __init__(self, sizes, *, rngs, activation=jax.nn.relu):
        ins = (4, *sizes[:-1])
        pairs = zip(ins, sizes, strict=True)
        self.layers = nnx.List([nnx.Linear(i, o, rngs=rngs) for i, o in pairs])
        self.activation = activation

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def _data(steps=6):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, 8, 4)).astype(np.float32)
    return {"x": x, "y": np.tanh(x[..., :3] * 2).astype(np.float32)}


def mse(out, batch):
    return jnp.mean((out - batch["y"]) ** 2)


# --8<-- [start:check-port-mlp]
REFERENCE = hk.transform(lambda x: hk.nets.MLP([16, 16, 3])(x))  # ships in Haiku
# --8<-- [end:check-port-mlp]


def test_a_correct_port_of_hk_nets_mlp_is_bitwise_equal_from_the_references_init():
    # --8<-- [start:check-port-call]
    port = MLP([16, 16, 3], rngs=nnx.Rngs(0))
    result = shared.check_port(REFERENCE, port, data=_data(), loss=mse)
    # --8<-- [end:check-port-call]
    assert result.agree, result.errors
    assert all(pair.bitwise for pair in result.pairs)
    aligned = {ref: port for ref, port, _ in result.config["alignment"]}
    # An independent reason for the pairing: Haiku's linear_i is the i-th Linear.
    assert aligned["params.mlp/~/linear_0.w"] == "params.layers.0.kernel"
    assert aligned["params.mlp/~/linear_2.b"] == "params.layers.2.bias"


def test_a_planted_activation_bug_is_found_at_step_one_in_the_loss():
    # gelu for relu: the first forward pass differs, so step 1's loss is the first leaf to
    # part (the step before the gradient is taken); the init is the reference's, so step 0
    # agrees.
    buggy = MLP([16, 16, 3], rngs=nnx.Rngs(0), activation=jax.nn.gelu)
    with pytest.raises(AssertionError, match=r"in lockstep .* at step 1, loss: "):
        shared.assert_port(REFERENCE, buggy, data=_data(), loss=mse)
