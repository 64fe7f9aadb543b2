"""The bias adder in plain JAX: a dict of params, a dict of state, two pure functions."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from shared.core import Canonical, NativeLoop, functional_loop

from ._config import MODEL, BiasAdderConfig, check_input

Dict = dict[str, jax.Array]


def bias_adder_loss(y: jax.Array, x: jax.Array) -> jax.Array:
    """The Flax page's loss: the model's output should reproduce its input."""
    return ((x - y) ** 2).sum()


def init(key: jax.Array, x: jax.Array) -> tuple[Dict, Dict]:
    """Zero bias and zero mean, shaped like one example; the state is not updated."""
    del key  # Nothing random: both start at zero, as on the Flax page.
    return {"bias": jnp.zeros(x.shape[1:])}, {"mean": jnp.zeros(x.shape[1:])}


def apply(
    params: Dict, state: Dict, x: jax.Array, *, train: bool, config: BiasAdderConfig
) -> tuple[jax.Array, Dict]:
    """Update the running mean (when training), then return `mean + bias`."""
    mean = state["mean"]
    if train:
        batch_mean = jnp.mean(x, axis=0, keepdims=config.keepdims)
        if config.axis_name is not None:
            batch_mean = jax.lax.pmean(batch_mean, config.axis_name)
        # `1.0 - momentum` is a Python float, rounded to float32 once: every framework
        # writes it this way, so that their graphs are identical.
        mean = config.momentum * mean + (1.0 - config.momentum) * batch_mean
    return mean + params["bias"], {"mean": mean}


@dataclass(frozen=True)
class JaxBiasAdder:
    """The pure-JAX reference implementation of the harness protocol."""

    config: BiasAdderConfig
    name: str = "jax"
    model: str = MODEL

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Dict, Dict]:
        check_input(self.name, x, self.config)
        return init(key, x)

    def apply(
        self, params: Dict, state: Dict, x: jax.Array, *, train: bool, key: jax.Array | None = None
    ) -> tuple[jax.Array, Dict]:
        del key  # nothing random
        check_input(self.name, x, self.config)
        return apply(params, state, x, train=train, config=self.config)

    def to_canonical(self, params: Dict, state: Dict) -> tuple[Dict, Dict]:
        return dict(params), dict(state)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[Dict, Dict]:
        return {"bias": jnp.asarray(params["bias"])}, {"mean": jnp.asarray(state["mean"])}

    def native_loop(
        self, params: Dict, state: Dict, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """A hand-written jitted step: what a pure-JAX user would write."""
        return functional_loop(
            functools.partial(apply, config=self.config), bias_adder_loss, params, state, tx
        )
