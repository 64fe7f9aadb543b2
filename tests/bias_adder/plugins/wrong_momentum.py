"""A deliberately wrong user implementation, for the divergence report.

It is the pure-JAX bias adder, except that from training step `FROM_STEP` on (1-based) it uses
momentum 0.8 instead of the configured one. It counts steps in its native state, which its
canonical state leaves out, as a real implementation may keep extra bookkeeping.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from shared.models.bias_adder import BiasAdderConfig, JaxBiasAdder

FROM_STEP = 5
WRONG_MOMENTUM = 0.8


@dataclasses.dataclass(frozen=True)
class WrongMomentumFromStep:
    config: BiasAdderConfig
    from_step: int = FROM_STEP
    name: str = "wrong_momentum"
    model: str = "bias-adder"

    def init(self, key, x):
        params, state = JaxBiasAdder(self.config).init(key, x)
        return params, {**state, "step": jnp.zeros((), jnp.int32)}

    def apply(self, params, state, x, *, train):
        if not train:
            return state["mean"] + params["bias"], state
        step = state["step"] + 1
        batch_mean = jnp.mean(x, axis=0)

        def ema(m: float):
            # m stays a Python float: a traced m would round `1.0 - m` differently in float32
            # and part ways from step 1 (the field notes' 0.100000024 trap).
            return m * state["mean"] + (1.0 - m) * batch_mean

        mean = jnp.where(step >= self.from_step, ema(WRONG_MOMENTUM), ema(self.config.momentum))
        return mean + params["bias"], {"mean": mean, "step": step}

    def to_canonical(self, params, state):
        return dict(params), {"mean": state["mean"]}

    def from_canonical(self, params, state):
        return dict(params), {"mean": state["mean"], "step": jnp.zeros((), jnp.int32)}
