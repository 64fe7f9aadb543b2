"""Linen's native training loop, shared by the models: a `TrainState` through a jitted step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax
from flax.training import train_state
from jaxtyping import Array

from shared import Batch, NativeLoop


# --8<-- [start:linen-optimizer-setup]
class TrainState(train_state.TrainState):
    """Linen's usual train state, plus the model's mutable `batch_stats` collection."""

    batch_stats: Any


# --8<-- [end:linen-optimizer-setup]


def linen_native_loop(
    train_step: Callable[[TrainState, Batch], tuple[TrainState, Array]],
    apply_fn: Callable[..., Any],
    params: Any,
    state: Any,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """Linen's loop: a `TrainState` threaded through a jitted `train_step(state, batch)`."""
    # --8<-- [start:linen-optimizer-create]
    ts: TrainState = TrainState.create(
        apply_fn=apply_fn, params=params, tx=tx, batch_stats=state["batch_stats"]
    )
    # --8<-- [end:linen-optimizer-create]

    def step(batch: Batch) -> Array:
        nonlocal ts
        ts, loss = train_step(ts, batch)
        return loss

    # --8<-- [start:linen-checkpoint]
    # The TrainState is the checkpoint: step, params, opt_state and batch_stats in one
    # pytree (apply_fn and tx are static fields, rebuilt by the code, not saved).
    def checkpoint() -> TrainState:
        return ts

    def restore(restored: TrainState) -> None:  # restored against a fresh TrainState
        nonlocal ts
        ts = restored

    # --8<-- [end:linen-checkpoint]
    return NativeLoop(
        step, lambda: (ts.params, {"batch_stats": ts.batch_stats}), checkpoint, restore
    )
