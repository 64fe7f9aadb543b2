"""The bias stack in Flax Linen: `nn.Dense` and the Linen bias adder per block, as lists
assigned in `setup`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.bias_stack import BiasStackConfig, bias_stack_loss, check_stack_input

from .._initializers import identity_init

# The step is the bias adder's: the same loss on a `TrainState` with `batch_stats`.
from ._bias_adder import BiasAdderWithRunningMean, train_step
from ._canonical import linen_canonical, linen_from_canonical
from ._native import linen_native_loop
from ._variants import linen_variants


class BiasStack(nn.Module):
    """L blocks in sequence: `z = Dense(h)`, then `h = z - adder(z)`, the bias adder's
    `mean + bias` subtracted from the Dense layer's output.

    Lists assigned in `setup` name their submodules `dense_0`, ... and `layers_0`, ...
    """

    depth: int
    features: int
    momentum: float = 0.9
    axis_name: str | None = None

    def setup(self) -> None:
        self.dense = [
            nn.Dense(self.features, use_bias=False, kernel_init=identity_init)
            for _ in range(self.depth)
        ]
        self.layers = [
            BiasAdderWithRunningMean(momentum=self.momentum, axis_name=self.axis_name)
            for _ in range(self.depth)
        ]

    def __call__(self, x: Float[Array, "batch features"], train: bool = True) -> Array:
        h = x
        for dense, layer in zip(self.dense, self.layers, strict=True):
            z = dense(h)
            h = z - layer(z, train)
        return h


class LinenBiasStack:
    """Adapter from the Linen stack to the harness protocol."""

    name = "flax_linen"
    model = "bias-stack"

    def __init__(self, config: BiasStackConfig):
        self.config = config
        self.module = BiasStack(config.depth, config.features, config.momentum, config.axis_name)
        # Linen's `dense_{l}` and `layers_{l}` -> the canonical `layers.{l}`.
        self.params_rename = {
            **{f"dense_{i}.kernel": f"layers.{i}.kernel" for i in range(config.depth)},
            **{f"layers_{i}.bias": f"layers.{i}.bias" for i in range(config.depth)},
        }
        self.state_rename = {f"layers_{i}.mean": f"layers.{i}.mean" for i in range(config.depth)}

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        check_stack_input(self.name, x, self.config)
        state, params = flax.core.pop(self.module.init(key, x), "params")
        return params, state

    def apply(
        self, params: Any, state: Any, x: jax.Array, *, train: bool, key: jax.Array | None = None
    ) -> tuple[Array, Any]:
        check_stack_input(self.name, x, self.config)
        if not train:
            return self.module.apply({"params": params, **state}, x, train=False), state
        return self.module.apply({"params": params, **state}, x, mutable=list(state.keys()))

    def to_canonical(self, params: Any, state: Any) -> tuple[Canonical, Canonical]:
        return (
            linen_canonical(params, self.params_rename),
            linen_canonical(state["batch_stats"], self.state_rename),
        )

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[Any, Any]:
        x = jnp.zeros((1, self.config.features))
        template_state, template_params = flax.core.pop(
            jax.eval_shape(self.module.init, jax.random.key(0), x), "params"
        )
        return (
            linen_from_canonical(template_params, params, self.params_rename),
            {
                "batch_stats": linen_from_canonical(
                    template_state["batch_stats"], state, self.state_rename
                )
            },
        )

    def native_loop(self, params: Any, state: Any, tx: optax.GradientTransformation) -> NativeLoop:
        return linen_native_loop(train_step, self.module.apply, params, state, tx)

    def native_variants(
        self, params: Any, state: Any, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return linen_variants(self.module.apply, bias_stack_loss, params, state, tx)
