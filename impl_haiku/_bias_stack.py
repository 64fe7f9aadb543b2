"""The bias stack in Haiku: an `hk.Linear` and the Haiku bias adder per block, made in a loop
as `hk.nets.MLP` makes its `hk.Linear`s, under `hk.transform_with_state`."""

from __future__ import annotations

from typing import Any

import haiku as hk
from jaxtyping import Array, Float

from shared.models.bias_stack import BiasStackConfig, check_stack_input

from ._adapter import HaikuAdapter

# The step is the bias adder's: the same loss, the same `apply` signature.
from ._bias_adder import BiasAdderWithRunningMean, make_train_step


class BiasStack(hk.Module):
    """L blocks in sequence: `z = Linear(h)`, then `h = z - adder(z)`, the bias adder's
    `mean + bias` subtracted from the Linear layer's output.

    The modules are made in `__init__`, named `linear_0`, ... and `layer_0`, ... under the
    stack's name (`bias_stack/~/linear_0`, `bias_stack/~/layer_0`).
    """

    def __init__(
        self,
        depth: int,
        features: int,
        momentum: float = 0.9,
        axis_name: str | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.linears = [
            hk.Linear(
                features, with_bias=False, w_init=hk.initializers.Identity(), name=f"linear_{i}"
            )
            for i in range(depth)
        ]
        self.layers = [
            BiasAdderWithRunningMean(momentum, axis_name=axis_name, name=f"layer_{i}")
            for i in range(depth)
        ]

    def __call__(self, x: Float[Array, "batch features"], is_training: bool) -> Array:
        h = x
        for linear, layer in zip(self.linears, self.layers, strict=True):
            z = linear(h)
            h = z - layer(z, is_training)
        return h


def make_forward(depth: int, features: int, **kwargs: Any) -> hk.TransformedWithState:
    def forward(x: Array, is_training: bool) -> Array:
        return BiasStack(depth, features, **kwargs, name="bias_stack")(x, is_training)

    return hk.without_apply_rng(hk.transform_with_state(forward))


class HaikuBiasStack(HaikuAdapter[BiasStackConfig]):
    """Adapter from the Haiku stack to the harness protocol."""

    model = "bias-stack"
    make_train_step = staticmethod(make_train_step)

    def __init__(self, config: BiasStackConfig):
        super().__init__(config)
        # Haiku's `bias_stack/~/linear_{i}` and `bias_stack/~/layer_{i}` -> the canonical
        # `layers.{i}`.
        scope = [(f"bias_stack/~/layer_{i}", f"layers.{i}") for i in range(config.depth)]
        self.params_rename = {
            **{f"bias_stack/~/linear_{i}.w": f"layers.{i}.kernel" for i in range(config.depth)},
            **{f"{m}.bias": f"{c}.bias" for m, c in scope},
        }
        self.state_rename = {f"{m}.mean": f"{c}.mean" for m, c in scope}

    def make(self) -> hk.TransformedWithState:
        c = self.config
        return make_forward(c.depth, c.features, momentum=c.momentum, axis_name=c.axis_name)

    def check(self, x: Any) -> None:
        check_stack_input(self.name, x, self.config)
