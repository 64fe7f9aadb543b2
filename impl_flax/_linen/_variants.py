"""Linen's other recommended way to run a training step ("native variants"), for any model.

Plain dicts through a `jax.jit` step, as Flax's *Managing Parameters and State* page writes
it. The builder takes the model's own `apply`, so that every model gets the variant with one
call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax
import optax
from flax.typing import Collection, VariableDict
from jaxtyping import Array

from shared import Batch, NativeLoop


def linen_variants(
    apply_fn: Callable[..., Any],
    loss_fn: Callable[[Array, Batch], Array],
    params: Any,
    state: Any,
    tx: optax.GradientTransformation,
) -> dict[str, NativeLoop]:
    """Linen's variants: `dicts`.

    **Arguments:**

    - `apply_fn`: the module's `apply`.
    - `loss_fn`: `(output, batch) -> loss`; the model is applied to the batch.
    - `params`, `state`: the `"params"` collection and the other collections (a dict of
      them, e.g. `{"batch_stats": ...}`), as the adapter's `init` returns them.
    - `tx`: the harness's optax transformation.
    """
    return {"dicts": _linen_dicts(apply_fn, loss_fn, params, state, tx)}


def _linen_dicts(
    apply_fn: Callable[..., Any],
    loss_fn: Callable[[Array, Batch], Array],
    params: Any,
    state: Any,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """The Flax page's loop: params, the mutable collections and optax's state as plain
    dicts through a `jax.jit` step, with no `TrainState` around them."""

    # --8<-- [start:linen-fast-loop]
    @jax.jit
    def update_step(
        params: Collection, state: VariableDict, opt_state: optax.OptState, x: Batch
    ) -> tuple[Collection, VariableDict, optax.OptState, Array]:
        def loss(params: Collection) -> tuple[Array, VariableDict]:
            y, updated_state = apply_fn({"params": params, **state}, x, mutable=list(state.keys()))
            return loss_fn(y, x), updated_state

        (value, state), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, value

    opt_state = tx.init(params)
    # --8<-- [end:linen-fast-loop]

    def step(x: Batch) -> Array:
        nonlocal params, state, opt_state
        params, state, opt_state, loss = update_step(params, state, opt_state, x)
        return cast(Array, loss)

    return NativeLoop(step, lambda: (params, state))
