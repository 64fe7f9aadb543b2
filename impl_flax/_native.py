"""The Flax native training loops, shared by the models: Linen's TrainState, NNX's Optimizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax
from flax import nnx
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
    ts = TrainState.create(
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


def nnx_native_loop(
    train_step: Callable[[Any, nnx.Optimizer, Batch], Array],
    model: nnx.Module,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """NNX's loop: the model and an `nnx.Optimizer` updated in place by `train_step`."""
    # --8<-- [start:nnx-optimizer-setup]
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)  # the optax state, on the model's side
    model.train()
    # --8<-- [end:nnx-optimizer-setup]
    checkpoint, restore = nnx_checkpoint(model, optimizer)
    return NativeLoop(
        lambda batch: train_step(model, optimizer, batch),
        lambda: (nnx.state(model, nnx.Param), nnx.state(model, nnx.BatchStat)),
        checkpoint,
        restore,
    )


def nnx_checkpoint(
    model: nnx.Module, optimizer: nnx.Optimizer
) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """NNX's checkpoint of a model and its optimizer: `nnx.state` out, `nnx.update` in."""

    # --8<-- [start:nnx-checkpoint]
    # Everything, unfiltered: Params, BatchStats, RNG streams, any custom Variable type, and
    # the optimizer's step and moments. A filter here (nnx.Param only, say) would leave
    # state out of the checkpoint, and the restore would silently keep its initial value.
    def checkpoint() -> dict[str, nnx.State]:
        return {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}

    def restore(restored: dict[str, nnx.State]) -> None:  # against a fresh model's nnx.state
        nnx.update(model, restored["model"])
        nnx.update(optimizer, restored["optimizer"])

    # --8<-- [end:nnx-checkpoint]
    return checkpoint, restore
