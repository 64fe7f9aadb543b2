"""The bias adder in Flax Linen: `self.param`, `self.variable('batch_stats', ...)`, `mutable`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.typing import Collection, VariableDict
from jaxtyping import Array, Float

from shared import NativeLoop
from shared.models.bias_adder import bias_adder_loss, check_input

from ._adapter import LinenAdapter
from ._native import TrainState
from ._variants import linen_variants


class BiasAdderWithRunningMean(nn.Module):
    """The Flax page's model, with the state's shape kept at (D,)."""

    momentum: float = 0.9
    keepdims: bool = False  # keepdims=True, as on the Flax page: mean becomes (1, D)
    axis_name: str | None = None  # average the batch mean over this axis (data parallel)

    # --8<-- [start:linen-write-state]
    @nn.compact
    def __call__(self, x: Float[Array, "batch features"], train: bool = True) -> Array:
        # --8<-- [start:linen-declare-state]
        is_initialized = self.has_variable("batch_stats", "mean")
        mean = self.variable("batch_stats", "mean", jnp.zeros, x.shape[1:])
        # --8<-- [end:linen-declare-state]
        # --8<-- [start:linen-declare-param]
        bias = self.param("bias", nn.initializers.zeros_init(), x.shape[1:])
        # --8<-- [end:linen-declare-param]
        if train and is_initialized:  # `init` creates the state but does not update it
            batch_mean = jnp.mean(x, axis=0, keepdims=self.keepdims)
            if self.axis_name is not None:
                batch_mean = jax.lax.pmean(batch_mean, self.axis_name)
            mean.value = self.momentum * mean.value + (1.0 - self.momentum) * batch_mean
        return mean.value + bias

    # --8<-- [end:linen-write-state]


# --8<-- [start:linen-train-step]
@jax.jit
def train_step(state: TrainState, x: Array) -> tuple[TrainState, Array]:
    # --8<-- [start:linen-apply-update]
    def loss_fn(params: Collection) -> tuple[Array, VariableDict]:
        y, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, x, mutable=["batch_stats"]
        )
        return ((x - y) ** 2).sum(), updates

    # --8<-- [end:linen-apply-update]

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
    return state, loss


# --8<-- [end:linen-train-step]


class LinenBiasAdder(LinenAdapter):
    """Adapter from the Linen model to the harness protocol."""

    model = "bias-adder"
    train_step = staticmethod(train_step)

    def make(self) -> BiasAdderWithRunningMean:
        c = self.config
        return BiasAdderWithRunningMean(
            momentum=c.momentum, keepdims=c.keepdims, axis_name=c.axis_name
        )

    def check(self, x: Any) -> None:
        check_input(self.name, x, self.config)

    def native_variants(
        self, params: Collection, state: VariableDict, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return linen_variants(self.module.apply, bias_adder_loss, params, state, tx)
