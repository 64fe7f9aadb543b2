"""Keras's other recommended way to run a training step ("native variants"), for any model.

`stateless-call` is Keras 3's *Writing a training loop from scratch in JAX*: the model's
`stateless_call` inside `jax.value_and_grad` under `jax.jit`, the variables threaded as
lists of arrays, so that no Keras variable is read or written at a step.

The guide updates with the Keras optimizer's `stateless_apply`. Here the update is optax's,
the harness's `tx` itself: Keras's SGD with momentum and its Adam round differently from
optax's (`_optim.keras_optimizer` says how; the bias adder's `KERAS_MOMENTUM` and
`KERAS_ADAM` tolerances measure it), and a variant must train like the harness step.
"""

from __future__ import annotations

from typing import Any

import jax
import keras
import optax
from jaxtyping import Array

from shared import Batch, NativeLoop


def keras_variants(
    model: keras.Model, params: list[Array], state: list[Array], tx: optax.GradientTransformation
) -> dict[str, NativeLoop]:
    """Keras's variants: `stateless-call`.

    **Arguments:**

    - `model`: a built model that takes the batch as its input and defines its loss in
      `compute_loss(x=..., y_pred=...)` (its variables are never read: values come in as
      arguments).
    - `params`, `state`: the trainable and non-trainable values to start from, in the
      model's variable order.
    - `tx`: the harness's optax transformation.
    """
    return {"stateless-call": _keras_stateless_call(model, params, state, tx)}


def _keras_stateless_call(
    model: keras.Model, params: list[Array], state: list[Array], tx: optax.GradientTransformation
) -> NativeLoop:
    """The guide's loop, with optax's update in place of `optimizer.stateless_apply`."""

    # --8<-- [start:keras-fast-loop]
    def compute_loss_and_updates(
        trainable_variables: list[Array], non_trainable_variables: list[Array], x: Batch
    ) -> tuple[Array, list[Array]]:
        y_pred, non_trainable_variables = model.stateless_call(
            trainable_variables, non_trainable_variables, x, training=True
        )
        return model.compute_loss(x=x, y_pred=y_pred), non_trainable_variables

    grad_fn = jax.value_and_grad(compute_loss_and_updates, has_aux=True)

    @jax.jit
    def train_step(state: tuple[Any, ...], x: Batch) -> tuple[Array, tuple[Any, ...]]:
        trainable_variables, non_trainable_variables, opt_state = state
        (loss, non_trainable_variables), grads = grad_fn(
            trainable_variables, non_trainable_variables, x
        )
        updates, opt_state = tx.update(grads, opt_state, trainable_variables)
        trainable_variables = optax.apply_updates(trainable_variables, updates)
        return loss, (trainable_variables, non_trainable_variables, opt_state)

    # --8<-- [end:keras-fast-loop]
    train_state: tuple[Any, ...] = (list(params), list(state), tx.init(list(params)))

    def step(x: Batch) -> Array:
        nonlocal train_state
        loss, train_state = train_step(train_state, x)
        return loss

    return NativeLoop(step, lambda: (list(train_state[0]), list(train_state[1])))
