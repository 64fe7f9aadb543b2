"""Keras's own training loop: `compile` with Keras's optimizer, then `train_on_batch`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import keras
import optax
from jaxtyping import Array

from shared import Batch, NativeLoop

from ._adapter import assign, values
from ._optim import harness_optimizer, keras_optimizer


def keras_native_loop(
    name: str,
    model: keras.Model,
    params: list[Array],
    state: list[Array],
    tx: optax.GradientTransformation,
    train_on_batch: Callable[..., Any],
    *,
    loss: Any = None,
    keep_optimizer_defaults: bool = False,
) -> NativeLoop:
    """Load the values into `model`, compile it with Keras's optimizer for the harness's
    `tx`, and step with `train_on_batch(model, batch) -> loss`.

    **Arguments:**

    - `name`: the implementation, for errors.
    - `model`: a new, built `keras.Model` (its variables are overwritten).
    - `params`, `state`: the values to start from, in the model's variable order.
    - `tx`: the harness's optimizer; it must come from `OptimizerConfig.make()`.
    - `train_on_batch`: `(model, batch) -> loss`, one step of Keras's loop, e.g.
      `model.train_on_batch(batch.x, batch.labels)`; `(model, batch, key) -> loss` for a
      random model.
    - `loss`: `compile`'s loss (`None` when the model overrides `compute_loss`).
    - `keep_optimizer_defaults`: Keras's own optimizer defaults instead of optax's.
    """
    config = harness_optimizer(name, tx)
    assign(model.trainable_variables, params)
    assign(model.non_trainable_variables, state)
    # Keras's own optimizer for the harness's optax one (keras.optimizers.SGD, Adam, ...).
    optimizer = keras_optimizer(config, keep_defaults=keep_optimizer_defaults)
    # --8<-- [start:keras-optimizer-setup]
    model.compile(
        optimizer=optimizer,  # a keras.optimizers.Optimizer: its moments are Keras variables
        loss=loss,
        jit_compile=True,  # the JAX backend's default, said out loud
    )
    # --8<-- [end:keras-optimizer-setup]
    # Keras makes the optimizer's variables at the first step; make them now, so that a
    # restore has somewhere to put a saved optimizer state.
    model.optimizer.build(model.trainable_variables)

    def step(batch: Batch, *key: Array) -> Array:
        # train_on_batch resets the loss tracker first, so its value is this step's loss.
        return jnp.asarray(train_on_batch(model, batch, *key), jnp.float32)

    # --8<-- [start:keras-checkpoint]
    # On the JAX backend a model's state is three lists of variables (the stateless-training
    # guide's tuple): trainable, non-trainable (BatchNorm's statistics, a dropout's seed
    # generator) and the optimizer's (its iteration count and moments).
    def checkpoint() -> dict[str, list[Array]]:
        return {
            "trainable": [v.value for v in model.trainable_variables],
            "non_trainable": [v.value for v in model.non_trainable_variables],
            "optimizer": [v.value for v in model.optimizer.variables],
        }

    def restore(restored: dict[str, list[Array]]) -> None:
        for group, variables in (
            ("trainable", model.trainable_variables),
            ("non_trainable", model.non_trainable_variables),
            ("optimizer", model.optimizer.variables),
        ):
            for variable, value in zip(variables, restored[group], strict=True):
                variable.assign(value)

    # --8<-- [end:keras-checkpoint]
    return NativeLoop(
        step,
        lambda: (values(model.trainable_variables), values(model.non_trainable_variables)),
        checkpoint,
        restore,
    )
