"""The native loop of a model written as pure functions: what a pure-JAX user would write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax
import optax

from ._protocol import NativeLoop, Params, State


def functional_loop(
    apply: Callable[..., tuple[jax.Array, State]],
    loss: Callable[[jax.Array, jax.Array], jax.Array],
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """A hand-written jitted step over params, state and optimizer state, kept in a closure.

    **Arguments:**

    - `apply`: `(params, state, x, *, train) -> (output, new state)`, a pure function.
    - `loss`: `(output, x) -> scalar`.
    - `params`, `state`: where the loop starts.
    - `tx`: the optax optimizer.
    """

    @jax.jit
    def train_step(
        params: Params, state: State, opt_state: optax.OptState, x: jax.Array
    ) -> tuple[Params, State, optax.OptState, jax.Array]:
        def loss_fn(params: Params) -> tuple[jax.Array, State]:
            y, new_state = apply(params, state, x, train=True)
            return loss(y, x), new_state

        (value, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, value

    opt_state = tx.init(params)

    def step(x: jax.Array) -> jax.Array:
        nonlocal params, state, opt_state
        params, state, opt_state, value = train_step(params, state, opt_state, x)
        return cast(jax.Array, value)

    def checkpoint() -> dict[str, Any]:
        return {"params": params, "state": state, "opt_state": opt_state}

    def restore(restored: dict[str, Any]) -> None:
        nonlocal params, state, opt_state
        params, state, opt_state = restored["params"], restored["state"], restored["opt_state"]

    return NativeLoop(step, lambda: (params, state), checkpoint, restore)
