"""`shared.check_port` on Haiku's `hk.nets.VectorQuantizerEMA` in a tiny VQ-VAE (a Linear
encoder, the quantiser, a Linear decoder), ported by hand to Flax NNX.

The port is this file's `ZeroDebiasedEMA`, `VectorQuantizerEMA` and `VQVAE`; the glue is the
lines marked `# glue` (8). The quantiser's codebook and its two EMAs are state, not params:
the port keeps them as `nnx.BatchStat`s, and the alignment pairs them with Haiku's
`vector_quantizer_ema/~/ema_cluster_size.hidden`, ... by the order in which the forward
pass writes them, with no mapping.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import shared

# Like tests/port/test_port_models.py: the fast tier's porter's path is tests/port/test_port_mlp.
pytestmark = pytest.mark.slow

DIM, CODES, FEATURES = 4, 8, 6


class ZeroDebiasedEMA(nnx.Module):
    """`hk.ExponentialMovingAverage`: `hidden` decays towards the values from zero, and
    `average` is it divided by `1 - decay**counter` (Adam's debiasing)."""

    def __init__(self, shape, decay):
        self.decay = decay
        self.hidden = nnx.BatchStat(jnp.zeros(shape))
        self.average = nnx.BatchStat(jnp.zeros(shape))
        self.counter = nnx.BatchStat(jnp.zeros((), jnp.int32))

    def blend(self, hidden, value, decay):
        return decay * hidden + (1 - decay) * value

    def __call__(self, value):
        # Haiku rounds decay to the value's dtype before `1 - decay`: float32 arithmetic,
        # where Python's `1 - 0.99` is float64's (see Float64Decay).
        decay = jnp.asarray(self.decay, value.dtype)
        self.counter[...] += 1
        self.hidden[...] = self.blend(self.hidden[...], value, decay)
        self.average[...] = self.hidden[...] / (1 - decay ** self.counter[...])
        return self.average[...]


class VectorQuantizerEMA(nnx.Module):
    """`hk.nets.VectorQuantizerEMA`: the nearest of `codes` vectors for each input, the
    codebook set from EMAs of the cluster sizes and of the inputs summed per cluster."""

    def __init__(self, dim, codes, commitment_cost, decay, epsilon=1e-5, *, rngs, ema=None):
        ema = ZeroDebiasedEMA if ema is None else ema
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "uniform")
        # Haiku's layout, (dim, codes): the codebook is a column per code.
        self.embeddings = nnx.BatchStat(init(rngs.params(), (dim, codes)))
        self.ema_cluster_size = ema((codes,), decay)
        self.ema_dw = ema((dim, codes), decay)
        self.commitment_cost, self.epsilon = commitment_cost, epsilon
        self.use_running_average = False  # model.train() / model.eval() set it, as BatchNorm's

    def __call__(self, x):
        flat = x.reshape(-1, self.embeddings.shape[0])
        codebook = self.embeddings[...]
        distances = (
            jnp.sum(flat**2, axis=1, keepdims=True)
            - 2 * flat @ codebook
            + jnp.sum(codebook**2, axis=0, keepdims=True)
        )
        nearest = jnp.argmin(distances, axis=1)
        onehot = jax.nn.one_hot(nearest, codebook.shape[1], dtype=x.dtype)
        quantized = codebook.T[nearest].reshape(x.shape)
        # The codebook learns from its EMAs, not the loss: only the commitment term is left.
        loss = self.commitment_cost * jnp.mean((jax.lax.stop_gradient(quantized) - x) ** 2)
        if not self.use_running_average:
            size = self.ema_cluster_size(onehot.sum(axis=0))
            summed = self.ema_dw(flat.T @ onehot)
            n = size.sum()
            # Laplace smoothing: no cluster's size is zero, so no code divides by it.
            size = (size + self.epsilon) / (n + size.shape[0] * self.epsilon) * n
            self.embeddings[...] = summed / size[None, :]
        straight_through = x + jax.lax.stop_gradient(quantized - x)  # the identity's gradient
        return straight_through, loss


class VQVAE(nnx.Module):
    def __init__(self, rngs, **vq):
        self.encoder = nnx.Linear(FEATURES, DIM, rngs=rngs)
        self.vq = VectorQuantizerEMA(DIM, CODES, 0.25, 0.99, rngs=rngs, **vq)
        self.decoder = nnx.Linear(DIM, FEATURES, rngs=rngs)

    def __call__(self, x):
        z, vq_loss = self.vq(self.encoder(x))
        return {"reconstruction": self.decoder(z), "vq_loss": vq_loss}


def forward(x, is_training):  # glue
    z = hk.Linear(DIM)(x)  # glue
    vq = hk.nets.VectorQuantizerEMA(DIM, CODES, 0.25, 0.99)(z, is_training=is_training)  # glue
    return {"reconstruction": hk.Linear(FEATURES)(vq["quantize"]), "vq_loss": vq["loss"]}  # glue


def vqvae_loss(out, batch):  # glue
    return jnp.mean((out["reconstruction"] - batch["x"]) ** 2) + out["vq_loss"]  # glue


def _clusters(steps):
    """Batches of 16 points around 8 centres in 6-D: one cluster a code."""
    rng = np.random.default_rng(0)
    centres = 2 * rng.standard_normal((CODES, FEATURES))
    noise = 0.3 * rng.standard_normal((steps, 16, FEATURES))
    return {"x": (centres[rng.integers(0, CODES, (steps, 16))] + noise).astype(np.float32)}


def _check(port, steps=20):
    reference = shared.wrap(hk.transform_with_state(forward), train_arg="is_training")  # glue
    return shared.check_port(reference, port, data=_clusters(steps), loss=vqvae_loss)  # glue


def test_hk_nets_vector_quantizer_ema_ported_to_nnx_is_bitwise_equal_ema_state_included():
    result = _check(VQVAE(nnx.Rngs(0)))
    assert result.agree, result.errors
    assert all(pair.bitwise for pair in result.pairs)  # 20 steps, every leaf of each
    assert not [a for a in result.analyses if a.key == "not_comparable"]  # all state compared
    aligned = {ref: port for ref, port, _ in result.config["alignment"]}
    # The independent reason: the same module names on both sides.
    for ema in ("ema_cluster_size", "ema_dw"):
        for leaf in ("hidden", "average", "counter"):
            ref = f"state.vector_quantizer_ema/~/{ema}.{leaf}"
            assert aligned[ref] == f"state.vq.{ema}.{leaf}"
    assert aligned["state.vector_quantizer_ema.embeddings"] == "state.vq.embeddings"
    assert aligned["params.linear.w"] == "params.encoder.kernel"
    assert aligned["params.linear_1.b"] == "params.decoder.bias"
    # The compared state is the EMAs' (closed forms, not the code's output): the counter
    # counts the steps, and each batch's cluster sizes sum to its 16 points, so their
    # debiased average does too.
    (trajectory,) = [t for name, t in result.trajectories.items() if name.startswith("flax")]
    counter = np.asarray(trajectory.state["vector_quantizer_ema/~/ema_cluster_size.counter"])
    assert counter.tolist() == list(range(21))
    sizes = np.asarray(trajectory.state["vector_quantizer_ema/~/ema_cluster_size.average"])
    # float32 rounding of the EMA, the debiasing and the sum: 8.3e-7 relative (measured).
    np.testing.assert_allclose(sizes[1:].sum(axis=1), 16, rtol=1e-5)


class PyTorchMomentum(ZeroDebiasedEMA):
    """Planted bug: decay read as PyTorch's momentum, the weight of the new value."""

    def blend(self, hidden, value, decay):
        return (1 - decay) * hidden + decay * value


class Float64Decay(ZeroDebiasedEMA):
    """Not Haiku's rounding: `1 - decay` in Python's float64, rounded to float32 after,
    0.01 where Haiku's is 0.0099999905 (a relative 1e-6: 9 to 12 ULP in the hidden)."""

    def blend(self, hidden, value, decay):
        return self.decay * hidden + (1 - self.decay) * value


@pytest.mark.parametrize(
    ("vq", "leaf"),
    [
        # The hidden is the first state the step writes after the counter. Step 1's loss
        # reads the initial codebook, so it agrees; and both EMAs come out 99 times too
        # large, so the codebook, their quotient, is off by only 51 ULP (measured).
        ({"ema": PyTorchMomentum}, "vector_quantizer_ema/~/ema_cluster_size.hidden"),
        ({"ema": Float64Decay}, "vector_quantizer_ema/~/ema_cluster_size.hidden"),
        # Without the smoothing the EMAs agree and only the codebook computed from them
        # parts: an unused code's column is 0 / 0 (NaN) where Haiku's is 0.
        ({"epsilon": 0.0}, "vector_quantizer_ema.embeddings"),
    ],
    ids=["pytorch-momentum", "float64-decay", "no-laplace-smoothing"],
)
def test_a_planted_vq_bug_is_found_at_step_one_in_the_state_leaf_it_writes(vq, leaf):
    result = _check(VQVAE(nnx.Rngs(0), **vq), steps=5)
    assert not result.agree
    (pair,) = result.pairs
    assert pair.first_divergence is not None
    assert (pair.first_divergence.step, pair.first_divergence.leaf) == (1, f"state.{leaf}")
