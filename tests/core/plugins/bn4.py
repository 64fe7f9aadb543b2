"""A model whose correct ports part running free: BatchNorm over 4 examples, trained hard.

Dense -> BatchNorm (batch statistics, running EMA) -> relu -> Dense, on 4 examples a step,
with plain sgd at lr 0.2. Two correct ports normalise two ways, multiplying by
`rsqrt(var + eps)` (as Flax does) and dividing by `sqrt(var + eps)` (as Equinox does): 1 ULP
apart at first, until
a BatchNorm output within rounding of relu's threshold lands on the other side in one of
them, and the free-running trajectories part (the mlp-bn case of the 3.12 release set, in
small). A third port is right until step `BUG_STEP`, then uses epsilon 1e-3: a bug that
starts after the free-running trajectories have parted. Every port is
plain JAX (pytrees of arrays), so that nothing but the arithmetic differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import shared

BUG_STEP = 60
"""The first step at which the buggy port's epsilon is wrong."""
FEATURES, HIDDEN, BATCH = 6, 16, 4


@dataclass(frozen=True)
class Bn4Config:
    steps: int = 120


def _data(config: Bn4Config, settings: shared.Settings) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(settings.seed)
    steps = settings.steps or config.steps
    x = rng.standard_normal((steps, BATCH, FEATURES)).astype(np.float32)
    teacher = rng.standard_normal((FEATURES, 1)).astype(np.float32)
    t = np.maximum(x @ teacher, 0).astype(np.float32)  # learnable: the relus matter
    return {"x": x, "t": t}


def _loss(y: jax.Array, batch: dict[str, jax.Array]) -> jax.Array:
    return jnp.mean((y - batch["t"]) ** 2)


def _init(impl, config, batches, seed):
    rng = np.random.default_rng(100 + seed)
    params = {
        "w1": (rng.standard_normal((FEATURES, HIDDEN)) / 2).astype(np.float32),
        "scale": np.ones(HIDDEN, np.float32),
        "bias": np.zeros(HIDDEN, np.float32),
        "w2": (rng.standard_normal((HIDDEN, 1)) / 4).astype(np.float32),
    }
    state = {"mean": np.zeros(HIDDEN, np.float32), "var": np.ones(HIDDEN, np.float32)}
    return impl.from_canonical(
        {k: jnp.asarray(v) for k, v in params.items()},
        {k: jnp.asarray(v) for k, v in state.items()},
    )


SPEC = shared.ModelSpec(
    name="bn4",
    config_type=Bn4Config,
    configure=lambda settings: Bn4Config(),
    data=_data,
    loss=_loss,
    inputs=lambda batch: batch["x"],
    init=_init,
    steps=120,
    learning_rate=0.2,
    params=["w1", "scale", "bias", "w2"],
    state=["mean", "var"],
    tolerances=shared.Tolerances(
        same=shared.Tolerance(
            max_ulp=8,
            atol=2e-6,
            reason="two variance formulas: a few ULP a step (lockstep); running free, a relu "
            "flip parts them for good",
        ),
    ),
)


class MultiplyByRsqrt:
    """BatchNorm that multiplies by `rsqrt(var + eps)`."""

    name = "rsqrt"
    model = "bn4"
    epsilon = 1e-5

    def __init__(self, config: Bn4Config):
        self.config = config

    def init(self, key, x):
        return _init(self, self.config, None, 0)

    def normalise(self, centred, var, eps):
        return centred * jax.lax.rsqrt(var + eps)

    def eps(self, state):
        return self.epsilon

    def apply(self, params, state, x, *, train):
        h = x @ params["w1"]
        if train:
            mean = jnp.mean(h, axis=0)
            var = jnp.mean((h - mean) ** 2, axis=0)
            new = {**state, "mean": 0.9 * state["mean"] + 0.1 * mean}
            new["var"] = 0.9 * state["var"] + 0.1 * var
        else:
            mean, var, new = state["mean"], state["var"], state
        hn = self.normalise(h - mean, var, self.eps(state)) * params["scale"] + params["bias"]
        return jnp.maximum(hn, 0) @ params["w2"], self.advance(new, train)

    def advance(self, state, train):
        return state

    def to_canonical(self, params, state):
        return dict(params), {"mean": state["mean"], "var": state["var"]}

    def from_canonical(self, params, state):
        return dict(params), {"mean": state["mean"], "var": state["var"]}


class DivideBySqrt(MultiplyByRsqrt):
    """BatchNorm that divides by `sqrt(var + eps)`: the same math, other roundings."""

    name = "sqrt"

    def normalise(self, centred, var, eps):
        return centred / jnp.sqrt(var + eps)


class BuggyFromStep(DivideBySqrt):
    """The dividing port, with epsilon 1e-3 from step `BUG_STEP` on; it counts its steps in
    a state leaf of its own, which its canonical state leaves out."""

    name = "buggy"

    def eps(self, state):
        return jnp.where(state["step"] + 1 >= BUG_STEP, 1e-3, self.epsilon)

    def advance(self, state, train):
        return {**state, "step": state["step"] + 1} if train else state

    def from_canonical(self, params, state):
        p, s = super().from_canonical(params, state)
        return p, {**s, "step": jnp.zeros((), jnp.int32)}
