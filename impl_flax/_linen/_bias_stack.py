"""The bias stack in Flax Linen: `nn.Dense` and the Linen bias adder per block, as lists
assigned in `setup`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import optax
from flax.typing import Collection, VariableDict
from jaxtyping import Array, Float

from shared import NativeLoop
from shared.models.bias_stack import BiasStackConfig, bias_stack_loss, check_stack_input

from .._initializers import identity_init
from ._adapter import LinenAdapter

# The step is the bias adder's: the same loss on a `TrainState` with `batch_stats`.
from ._bias_adder import BiasAdderWithRunningMean, train_step
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


class LinenBiasStack(LinenAdapter):
    """Adapter from the Linen stack to the harness protocol."""

    model = "bias-stack"
    train_step = staticmethod(train_step)

    def __init__(self, config: BiasStackConfig):
        super().__init__(config)
        # Linen's `dense_{l}` and `layers_{l}` -> the canonical `layers.{l}`.
        self.params_rename = {
            **{f"dense_{i}.kernel": f"layers.{i}.kernel" for i in range(config.depth)},
            **{f"layers_{i}.bias": f"layers.{i}.bias" for i in range(config.depth)},
        }
        self.state_rename = {f"layers_{i}.mean": f"layers.{i}.mean" for i in range(config.depth)}

    def make(self) -> BiasStack:
        c = self.config
        return BiasStack(c.depth, c.features, c.momentum, c.axis_name)

    def check(self, x: Any) -> None:
        check_stack_input(self.name, x, self.config)

    def native_variants(
        self, params: Collection, state: VariableDict, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return linen_variants(self.module.apply, bias_stack_loss, params, state, tx)
