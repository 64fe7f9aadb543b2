"""Two small models for the data-flow order of the leaves that diverge at a step.

`HaikuEma`: a bias trained on the batch, with Haiku's zero-debiased
`hk.ExponentialMovingAverage` of the batch mean as state (`hidden`, then `average`, then
`counter`). `PyTorchMomentum` is the porting bug of passing PyTorch's `momentum=0.1` as
Haiku's `decay`: at step 1 `hidden` is far off, while the debiased `average` does not
depend on the decay and differs by rounding only, and its name sorts first.

`TwoLayers`: two running means, an early layer named `z_early` and a late one `a_late`
(names that sort the other way round); `EarlyBug` scales the early layer's input, so both
layers' state diverge from step 1, the early one first.
"""

from __future__ import annotations

from dataclasses import dataclass

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import shared


@dataclass(frozen=True)
class Config:
    features: int = 3


def _data(config: Config, settings: shared.Settings) -> np.ndarray:
    rng = np.random.default_rng(settings.seed)
    return (rng.standard_normal((settings.steps or 4, 5, config.features)) + 0.5).astype(np.float32)


def _loss(y: jax.Array, x: jax.Array) -> jax.Array:
    return jnp.sum((x - y) ** 2)


def _zeros(impl, config, batches, seed):
    """Every port starts from the same values: zeros (Haiku's own init would run its EMA
    once, with its own decay)."""
    d = config.features
    params, state = impl.init(jax.random.key(seed), jnp.zeros((1, d)))
    cparams, cstate = impl.to_canonical(params, state)
    zero = lambda tree: {k: jnp.zeros_like(v) for k, v in tree.items()}  # noqa: E731
    return impl.from_canonical(zero(cparams), zero(cstate))


def spec(name: str) -> shared.ModelSpec:
    """A spec for these toy models: bitwise (the spec declares no tolerance)."""
    return shared.ModelSpec(
        name=name,
        config_type=Config,
        configure=lambda s: Config(),
        data=_data,
        loss=_loss,
        init=_zeros,
    )


class HaikuEma:
    """y = ema(batch mean) + bias, the EMA Haiku's own."""

    name = "haiku-ema"
    model = "ema"
    decay = 0.9

    def __init__(self, config: Config):
        self.config = config

        def forward(x):
            bias = hk.get_parameter("bias", (x.shape[-1],), init=jnp.zeros)
            ema = hk.ExponentialMovingAverage(self.decay, name="ema")
            return ema(jnp.mean(x, axis=0)) + bias

        self.net = hk.transform_with_state(forward)

    def init(self, key, x):
        return self.net.init(key, x)

    def apply(self, params, state, x, *, train):
        y, new_state = self.net.apply(params, state, None, x)
        return y, new_state if train else state

    def to_canonical(self, params, state):
        ema = state["ema"]
        return {"bias": params["~"]["bias"]}, {
            "ema.hidden": ema["hidden"],
            "ema.average": ema["average"],
            "ema.counter": ema["counter"],
        }

    def from_canonical(self, params, state):
        return {"~": {"bias": params["bias"]}}, {
            "ema": {
                "hidden": state["ema.hidden"],
                "average": state["ema.average"],
                "counter": state["ema.counter"],
            }
        }


class PyTorchMomentum(HaikuEma):
    """The bug: PyTorch's momentum (0.1) given as Haiku's decay (0.9 meant)."""

    name = "pytorch-momentum"
    decay = 0.1


class TwoLayers:
    """Two running means in a row: `z_early` of the input, `a_late` of the early output."""

    name = "two-layers"
    model = "two-layers"
    scale = 1.0

    def __init__(self, config: Config):
        self.config = config

    def init(self, key, x):
        d = x.shape[-1]
        zeros = jnp.zeros(d)
        return {"bias": zeros}, {"z_early.mean": zeros, "a_late.mean": zeros}

    def apply(self, params, state, x, *, train):
        early = 0.9 * state["z_early.mean"] + 0.1 * jnp.mean(self.scale * x, axis=0)
        late = 0.9 * state["a_late.mean"] + 0.1 * jnp.mean(x - early, axis=0)
        new = {"z_early.mean": early, "a_late.mean": late}
        return early + late + params["bias"], new if train else state

    def to_canonical(self, params, state):
        return dict(params), dict(state)

    def from_canonical(self, params, state):
        return dict(params), dict(state)


class EarlyBug(TwoLayers):
    """The early layer sees its input scaled by 1.5."""

    name = "early-bug"
    scale = 1.5


EMA = spec("ema")
TWO_LAYERS = spec("two-layers")
