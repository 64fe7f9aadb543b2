"""Equinox's native training loop, shared by the models: model, state and optimizer state
threaded through an `eqx.filter_jit`-compiled step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import optax
from jaxtyping import Array

from shared import Batch, NativeLoop

EquinoxStep = Callable[..., tuple[Any, eqx.nn.State | None, optax.OptState, Array]]
"""A model's Equinox train step: `(model, state, opt_state, batch, tx) -> (model, state,
opt_state, loss)`."""


def equinox_native_loop(
    train_step: EquinoxStep,
    model: eqx.Module,
    state: eqx.nn.State | None,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """`train_step(model, state, opt_state, batch, tx) -> (model, state, opt_state, loss)`."""
    # --8<-- [start:equinox-optimizer-setup]
    opt_state = tx.init(eqx.filter(model, eqx.is_array))
    # --8<-- [end:equinox-optimizer-setup]

    def step(batch: Batch, *key: Array) -> Array:  # a random model's step takes its key
        nonlocal model, state, opt_state
        model, state, opt_state, loss = train_step(model, state, opt_state, batch, tx, *key)
        return loss

    # --8<-- [start:equinox-checkpoint]
    # A module holds functions and other static fields next to its arrays: save the arrays
    # (eqx.filter), and on restore combine them with the fresh model's static part.
    def checkpoint() -> dict[str, Any]:
        return {"model": eqx.filter(model, eqx.is_array), "state": state, "opt_state": opt_state}

    def restore(restored: dict[str, Any]) -> None:  # against the fresh model's arrays
        nonlocal model, state, opt_state
        model = eqx.combine(restored["model"], eqx.filter(model, eqx.is_array, inverse=True))
        state, opt_state = restored["state"], restored["opt_state"]  # eqx.nn.State: a pytree

    # --8<-- [end:equinox-checkpoint]
    return NativeLoop(step, lambda: (model, state), checkpoint, restore)
