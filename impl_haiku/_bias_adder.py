"""The bias adder in Haiku: `hk.transform_with_state`, `hk.get_state`, `hk.set_state`."""

from __future__ import annotations

from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.bias_adder import BiasAdderConfig, check_input

from ._native import haiku_native_loop


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
    def forward(x, is_training):
        return BiasAdderWithRunningMean(**kwargs, name="bias_adder")(x, is_training)

    return hk.without_apply_rng(hk.transform_with_state(forward))


# --8<-- [end:haiku-split]


# --8<-- [start:haiku-train-step]
# --8<-- [start:haiku-fast-loop]
def make_train_step(forward: hk.TransformedWithState, tx: optax.GradientTransformation):
    @jax.jit
    def train_step(params, state, opt_state, x):
        # --8<-- [start:haiku-apply-update]
        def loss_fn(params):
            y, state_out = forward.apply(params, state, x, is_training=True)
            return ((x - y) ** 2).sum(), state_out

        # --8<-- [end:haiku-apply-update]

        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss

    return train_step


# --8<-- [end:haiku-fast-loop]
# --8<-- [end:haiku-train-step]


class HaikuBiasAdder:
    """Adapter from the Haiku model to the harness protocol."""

    name = "haiku"
    model = "bias-adder"

    def __init__(self, config: BiasAdderConfig):
        self.config = config
        self.forward = make_forward(
            momentum=config.momentum,
            keepdims=config.keepdims,
            axis_name=config.axis_name,
        )

    def init(self, key: jax.Array, x: jax.Array) -> tuple[hk.Params, hk.State]:
        check_input(self.name, x, self.config)
        # --8<-- [start:haiku-init]
        params, state = self.forward.init(key, x, is_training=True)  # runs __call__ once
        # --8<-- [end:haiku-init]
        return params, state

    def apply(
        self,
        params: hk.Params,
        state: hk.State,
        x: jax.Array,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, hk.State]:
        check_input(self.name, x, self.config)
        # --8<-- [start:haiku-eval]
        return self.forward.apply(params, state, x, is_training=train)
        # --8<-- [end:haiku-eval]

    def to_canonical(self, params: hk.Params, state: hk.State) -> tuple[Canonical, Canonical]:
        return {"bias": params["bias_adder"]["bias"]}, {"mean": state["bias_adder"]["mean"]}

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[hk.Params, hk.State]:
        return (
            {"bias_adder": {"bias": jnp.asarray(params["bias"])}},
            {"bias_adder": {"mean": jnp.asarray(state["mean"])}},
        )

    def native_loop(
        self, params: hk.Params, state: hk.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return haiku_native_loop(make_train_step(self.forward, tx), params, state, tx)
