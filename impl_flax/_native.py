"""The Flax native training loops, shared by the models: Linen's TrainState, NNX's Optimizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax
from flax import nnx
from flax.training import train_state
from jaxtyping import Array

from shared import Batch, NativeLoop


class TrainState(train_state.TrainState):
    """Linen's usual train state, plus the model's mutable `batch_stats` collection."""

    batch_stats: Any


def linen_native_loop(
    train_step: Callable[[TrainState, Batch], tuple[TrainState, Array]],
    apply_fn: Callable[..., Any],
    params: Any,
    state: Any,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """Linen's loop: a `TrainState` threaded through a jitted `train_step(state, batch)`."""
    ts = TrainState.create(
        apply_fn=apply_fn, params=params, tx=tx, batch_stats=state["batch_stats"]
    )

    def step(batch: Batch) -> Array:
        nonlocal ts
        ts, loss = train_step(ts, batch)
        return loss

    return NativeLoop(step, lambda: (ts.params, {"batch_stats": ts.batch_stats}))


def nnx_native_loop(
    train_step: Callable[[Any, nnx.Optimizer, Batch], Array],
    model: nnx.Module,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """NNX's loop: the model and an `nnx.Optimizer` updated in place by `train_step`."""
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    model.train()
    return NativeLoop(
        lambda batch: train_step(model, optimizer, batch),
        lambda: (nnx.state(model, nnx.Param), nnx.state(model, nnx.BatchStat)),
    )
