"""Equinox's native training loop, shared by the models: model, state and optimizer state
threaded through an `eqx.filter_jit`-compiled step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import optax
from jaxtyping import Array

from shared import Batch, NativeLoop


def equinox_native_loop(
    train_step: Callable[..., tuple[Any, eqx.nn.State, Any, Array]],
    model: eqx.Module,
    state: eqx.nn.State,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """`train_step(model, state, opt_state, batch, tx) -> (model, state, opt_state, loss)`."""
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    def step(batch: Batch) -> Array:
        nonlocal model, state, opt_state
        model, state, opt_state, loss = train_step(model, state, opt_state, batch, tx)
        return loss

    return NativeLoop(step, lambda: (model, state))
