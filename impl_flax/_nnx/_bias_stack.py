"""The bias stack in Flax NNX: `nnx.Linear` and the NNX bias adder per block, held in
`nnx.List`s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import optax
from flax import nnx
from jaxtyping import Array, Float

from shared import NativeLoop
from shared.models.bias_stack import BiasStackConfig, check_stack_input

from .._initializers import identity_init
from ._adapter import NNXAdapter, NNXState
from ._bias_adder import BiasAdderWithRunningMean
from ._variants import nnx_variants


class BiasStack(nnx.Module):
    """L blocks in sequence: `z = Linear(h)`, then `h = z - adder(z)`, the bias adder's
    `mean + bias` subtracted from the Linear layer's output.

    Flax 0.12 refuses a plain list of modules as an attribute (a list is static by default);
    `nnx.List` makes it data, its Variables found at `dense.0.kernel`, `layers.0.bias`, ...
    """

    def __init__(
        self,
        depth: int,
        features: int,
        *,
        rngs: nnx.Rngs,
        momentum: float = 0.9,
        axis_name: str | None = None,
    ):
        self.dense = nnx.List(
            [
                nnx.Linear(features, features, use_bias=False, kernel_init=identity_init, rngs=rngs)
                for _ in range(depth)
            ]
        )
        self.layers = nnx.List(
            [
                BiasAdderWithRunningMean(features, momentum=momentum, axis_name=axis_name)
                for _ in range(depth)
            ]
        )

    def __call__(self, x: Float[Array, "batch features"]) -> Array:
        h = x
        for dense, layer in zip(self.dense, self.layers, strict=True):
            z = dense(h)
            h = z - layer(z)  # model.train() / model.eval() reach every layer
        return h


@nnx.jit
def train_step(model: BiasStack, optimizer: nnx.Optimizer[BiasStack], x: Array) -> Array:
    def loss_fn(model: BiasStack) -> Array:
        y = model(x)  # updates every layer's mean in place; nnx.grad carries the updates out
        return ((x - y) ** 2).sum()

    loss, grads = nnx.value_and_grad(loss_fn)(model)  # gradients w.r.t. nnx.Param only
    optimizer.update(model, grads)
    return cast(Array, loss)  # nnx.value_and_grad's annotation: Any


class NNXBiasStack(NNXAdapter[BiasStackConfig, BiasStack]):
    """Adapter from the NNX stack to the harness protocol (split once, merge per call)."""

    model = "bias-stack"
    train_step = staticmethod(train_step)

    def __init__(self, config: BiasStackConfig):
        super().__init__(config)
        # NNX's `dense.{l}` -> the canonical `layers.{l}`.
        self.params_rename = {
            f"dense.{i}.kernel": f"layers.{i}.kernel" for i in range(config.depth)
        }

    def make(self, rngs: nnx.Rngs) -> BiasStack:
        # Identity kernels, zero biases and means: the key is passed on but draws nothing.
        c = self.config
        return BiasStack(c.depth, c.features, rngs=rngs, momentum=c.momentum, axis_name=c.axis_name)

    def check(self, x: Any) -> None:
        check_stack_input(self.name, x, self.config)

    def native_variants(
        self, params: NNXState, state: NNXState, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return nnx_variants(train_step, self.merge(params, state), tx)
