"""The bias stack in plain JAX: a list of per-block dicts, a Python loop over the blocks."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from shared.core import (
    Canonical,
    NativeLoop,
    canonical_from_paths,
    functional_loop,
    tree_from_canonical,
)
from shared.models.bias_adder import bias_adder_loss

from ._config import MODEL, BiasStackConfig, check_stack_input

Tree = dict[str, list[dict[str, jax.Array]]]
"""`{"layers": [{"kernel": ..., "bias": ...}, ...]}` (params) or `{"layers": [{"mean": ...},
...]}` (state): the key paths are the canonical names, `layers.{l}.kernel`, `layers.{l}.bias`
and `layers.{l}.mean`."""

bias_stack_loss = bias_adder_loss
"""The bias adder's loss on the stack's output: `sum((x - h_L)**2)`."""


def init(key: jax.Array, x: jax.Array, config: BiasStackConfig) -> tuple[Tree, Tree]:
    """Identity kernels, zero biases and zero means in every block; nothing is updated."""
    del key  # nothing random: every framework starts from the same values
    features = x.shape[-1]
    params = {
        "layers": [
            {"kernel": jnp.eye(features), "bias": jnp.zeros((features,))}
            for _ in range(config.depth)
        ]
    }
    state = {"layers": [{"mean": jnp.zeros((features,))} for _ in range(config.depth)]}
    return params, state


def bias_adder(
    params: dict[str, jax.Array],
    state: dict[str, jax.Array],
    h: jax.Array,
    *,
    train: bool,
    config: BiasStackConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The bias adder: update the running mean from `h`'s batch mean (training), return
    `mean + bias`."""
    mean = state["mean"]
    if train:
        batch_mean = jnp.mean(h, axis=0)
        if config.axis_name is not None:
            batch_mean = jax.lax.pmean(batch_mean, config.axis_name)
        # `1.0 - momentum` is a Python float, rounded to float32 once, as in every framework.
        mean = config.momentum * mean + (1.0 - config.momentum) * batch_mean
    return mean + params["bias"], {"mean": mean}


def apply(
    params: Tree, state: Tree, x: jax.Array, *, train: bool, config: BiasStackConfig
) -> tuple[jax.Array, Tree]:
    """`h_0 = x`; block l: `z_l = h_l @ kernel_l`, `h_{l+1} = z_l - a_l` with `a_l` the bias
    adder's `mean + bias` on `z_l`; returns `h_L`."""
    h = x
    new_state = []
    for layer_params, layer_state in zip(params["layers"], state["layers"], strict=True):
        z = h @ layer_params["kernel"]
        a, layer_state = bias_adder(layer_params, layer_state, z, train=train, config=config)
        h = z - a
        new_state.append(layer_state)
    return h, {"layers": new_state}


@dataclass(frozen=True)
class JaxBiasStack:
    """The pure-JAX reference implementation of the harness protocol."""

    config: BiasStackConfig
    name: str = "jax"
    model: str = MODEL

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Tree, Tree]:
        check_stack_input(self.name, x, self.config)
        return init(key, x, self.config)

    def apply(
        self, params: Tree, state: Tree, x: jax.Array, *, train: bool, key: jax.Array | None = None
    ) -> tuple[jax.Array, Tree]:
        del key  # nothing random
        check_stack_input(self.name, x, self.config)
        return apply(params, state, x, train=train, config=self.config)

    def to_canonical(self, params: Tree, state: Tree) -> tuple[Canonical, Canonical]:
        return canonical_from_paths(params), canonical_from_paths(state)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[Tree, Tree]:
        # The template gives the layout and the shapes; tree_from_canonical names any
        # missing, extra or misshapen leaf.
        template = init(jax.random.key(0), jnp.zeros((1, self.config.features)), self.config)
        return (
            tree_from_canonical(template[0], params),
            tree_from_canonical(template[1], state),
        )

    def native_loop(
        self, params: Tree, state: Tree, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """A hand-written jitted step: what a pure-JAX user would write."""
        return functional_loop(
            functools.partial(apply, config=self.config), bias_stack_loss, params, state, tx
        )
