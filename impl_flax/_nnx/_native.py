"""NNX's native training loop, shared by the models: the model and an `nnx.Optimizer`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax
from flax import nnx
from jaxtyping import Array

from shared import Batch, NativeLoop

NNXStep = Callable[[Any, nnx.Optimizer[Any], Batch], Array]
"""A model's NNX train step: `(model, optimizer, batch) -> loss`, updating both in place."""


def nnx_native_loop(
    train_step: NNXStep,
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
        lambda batch, *key: train_step(model, optimizer, batch, *key),  # key: a random model's
        lambda: (nnx.state(model, nnx.Param), nnx.state(model, nnx.BatchStat)),
        checkpoint,
        restore,
    )


def nnx_checkpoint(
    model: nnx.Module, optimizer: nnx.Optimizer[Any]
) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """NNX's checkpoint of a model and its optimizer: `nnx.state` out, `nnx.update` in."""

    # --8<-- [start:nnx-checkpoint]
    # Everything, unfiltered: Params, BatchStats, RNG streams, any custom Variable type, and
    # the optimizer's step and moments. A filter here (nnx.Param only, say) would leave
    # state out of the checkpoint, and the restore would silently keep its initial value.
    def checkpoint() -> dict[str, nnx.State[Any, Any]]:
        return {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}

    def restore(
        restored: dict[str, nnx.State[Any, Any]],
    ) -> None:  # against a fresh model's nnx.state
        nnx.update(model, restored["model"])
        nnx.update(optimizer, restored["optimizer"])

    # --8<-- [end:nnx-checkpoint]
    return checkpoint, restore
