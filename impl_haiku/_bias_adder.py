"""The bias adder in Haiku: `hk.transform_with_state`, `hk.get_state`, `hk.set_state`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from shared.models.bias_adder import BiasAdderConfig, check_input

from ._adapter import HaikuAdapter
from ._native import HaikuStep


class BiasAdderWithRunningMean(hk.Module):
    """The Flax page's model in Haiku: state is read and written through `hk.get/set_state`."""

    def __init__(
        self,
        momentum: float = 0.9,
        keepdims: bool = False,
        axis_name: str | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.momentum = momentum
        self.keepdims = keepdims
        self.axis_name = axis_name

    # --8<-- [start:haiku-write-state]
    def __call__(self, x: Float[Array, "batch features"], is_training: bool) -> Array:
        # --8<-- [start:haiku-declare-state]
        mean = hk.get_state("mean", x.shape[1:], init=jnp.zeros)
        # --8<-- [end:haiku-declare-state]
        # --8<-- [start:haiku-declare-param]
        bias = hk.get_parameter("bias", x.shape[1:], init=jnp.zeros)
        # --8<-- [end:haiku-declare-param]
        if is_training and not hk.running_init():  # init creates the state, no update
            batch_mean = jnp.mean(x, axis=0, keepdims=self.keepdims)
            if self.axis_name is not None:
                batch_mean = jax.lax.pmean(batch_mean, self.axis_name)
            mean = self.momentum * mean + (1.0 - self.momentum) * batch_mean
            hk.set_state("mean", mean)
        return mean + bias

    # --8<-- [end:haiku-write-state]


# --8<-- [start:haiku-split]
def make_forward(**kwargs: Any) -> hk.TransformedWithState:
    def forward(x: Array, is_training: bool) -> Array:
        return BiasAdderWithRunningMean(**kwargs, name="bias_adder")(x, is_training)

    return hk.without_apply_rng(hk.transform_with_state(forward))


# --8<-- [end:haiku-split]


# --8<-- [start:haiku-train-step]
# --8<-- [start:haiku-fast-loop]
def make_train_step(
    forward: hk.TransformedWithState, tx: optax.GradientTransformation
) -> HaikuStep:
    @jax.jit
    def train_step(
        params: hk.Params, state: hk.State, opt_state: optax.OptState, x: Array
    ) -> tuple[hk.Params, hk.State, optax.OptState, Array]:
        # --8<-- [start:haiku-apply-update]
        def loss_fn(params: hk.Params) -> tuple[Array, hk.State]:
            y, state_out = forward.apply(params, state, x, is_training=True)
            return ((x - y) ** 2).sum(), state_out

        # --8<-- [end:haiku-apply-update]

        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss

    return train_step


# --8<-- [end:haiku-fast-loop]
# --8<-- [end:haiku-train-step]


class HaikuBiasAdder(HaikuAdapter[BiasAdderConfig]):
    """Adapter from the Haiku model to the harness protocol."""

    model = "bias-adder"
    make_train_step = staticmethod(make_train_step)
    params_rename: Mapping[str, str] = {"bias_adder.bias": "bias"}
    state_rename: Mapping[str, str] = {"bias_adder.mean": "mean"}

    def make(self) -> hk.TransformedWithState:
        c = self.config
        return make_forward(momentum=c.momentum, keepdims=c.keepdims, axis_name=c.axis_name)

    def check(self, x: Any) -> None:
        check_input(self.name, x, self.config)
