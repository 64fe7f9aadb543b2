"""The bias adder in Flax NNX: `nnx.Param`, `nnx.BatchStat`, `nnx.Optimizer`, `nnx.jit`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jaxtyping import Array, Float

from shared import NativeLoop
from shared.models.bias_adder import BiasAdderConfig, check_input

from ._adapter import NNXAdapter, NNXState
from ._variants import nnx_variants


class BiasAdderWithRunningMean(nnx.Module):
    """The Flax page's model in NNX: state lives on the module as an `nnx.BatchStat`."""

    def __init__(
        self,
        features: int,
        *,
        momentum: float = 0.9,
        keepdims: bool = False,
        axis_name: str | None = None,
        use_running_average: bool = False,
    ):
        # --8<-- [start:nnx-declare-param]
        self.bias = nnx.Param(jnp.zeros((features,)))
        # --8<-- [end:nnx-declare-param]
        # --8<-- [start:nnx-declare-state]
        self.mean = nnx.BatchStat(jnp.zeros((features,)))
        # --8<-- [end:nnx-declare-state]
        self.momentum = momentum
        self.keepdims = keepdims
        self.axis_name = axis_name
        self.use_running_average = use_running_average  # set by model.train() / model.eval()

    # --8<-- [start:nnx-write-state]
    def __call__(self, x: Float[Array, "batch features"]) -> Array:
        if not self.use_running_average:
            batch_mean = jnp.mean(x, axis=0, keepdims=self.keepdims)
            if self.axis_name is not None:
                batch_mean = jax.lax.pmean(batch_mean, self.axis_name)
            self.mean[...] = self.momentum * self.mean[...] + (1.0 - self.momentum) * batch_mean
        return self.mean[...] + self.bias[...]

    # --8<-- [end:nnx-write-state]


# --8<-- [start:nnx-train-step]
@nnx.jit
def train_step(
    model: BiasAdderWithRunningMean, optimizer: nnx.Optimizer[BiasAdderWithRunningMean], x: Array
) -> Array:
    # --8<-- [start:nnx-apply-update]
    def loss_fn(model: BiasAdderWithRunningMean) -> Array:
        y = model(x)  # updates model.mean in place; nnx.grad carries the update out
        return ((x - y) ** 2).sum()

    # --8<-- [end:nnx-apply-update]

    loss, grads = nnx.value_and_grad(loss_fn)(model)  # gradients w.r.t. nnx.Param only
    optimizer.update(model, grads)
    return cast(Array, loss)  # nnx.value_and_grad's annotation: Any


# --8<-- [end:nnx-train-step]


class NNXBiasAdder(NNXAdapter[BiasAdderConfig, BiasAdderWithRunningMean]):
    """Adapter from the NNX model to the harness protocol (split once, merge per call)."""

    model = "bias-adder"
    train_step = staticmethod(train_step)

    def make(self, rngs: nnx.Rngs) -> BiasAdderWithRunningMean:
        del rngs  # zeros: nothing random to draw
        config = self.config
        # --8<-- [start:nnx-init]
        # The variables are made in __init__, which never calls the model: no state update.
        model = BiasAdderWithRunningMean(
            config.features,
            momentum=config.momentum,
            keepdims=config.keepdims,
            axis_name=config.axis_name,
        )
        # --8<-- [end:nnx-init]
        return model

    def check(self, x: Any) -> None:
        check_input(self.name, x, self.config)

    def native_variants(
        self, params: NNXState, state: NNXState, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return nnx_variants(train_step, self.merge(params, state), tx)
