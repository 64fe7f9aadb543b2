"""The harness's one generic training step: gradients of the params, the state threaded
through, one optax update."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import optax

from ._protocol import Batch, Implementation, Params, State

LossFn = Callable[[jax.Array, Batch], jax.Array]
InputsFn = Callable[[Batch], Any]
StepFn = Callable[..., tuple[Params, State, optax.OptState, jax.Array]]


@dataclass(eq=False)  # hashable by identity, as jax.jit requires
class TrainStep:
    """A generic training step: `(params, state, opt_state, batch) -> (..., loss)`.

    Gradients are taken with respect to params only; the state returned by the model's
    training call is threaded through. `traces` counts how often JAX traced the step, which
    shows retracing (a state that changes shape compiles a second program). `inputs` picks
    what the model sees of a batch (default: the batch itself; a classifier sees the
    features while its loss also reads the labels). A `key`, when given, is passed on to the
    model's `apply` (random models: dropout).
    """

    impl: Implementation
    loss_fn: LossFn
    tx: optax.GradientTransformation
    inputs: InputsFn | None = None
    traces: int = field(default=0, init=False)

    def __call__(
        self,
        params: Params,
        state: State,
        opt_state: optax.OptState,
        batch: Batch,
        key: jax.Array | None = None,
    ) -> tuple[Params, State, optax.OptState, jax.Array]:
        params, new_state, opt_state, loss, _ = self.with_grads(
            params, state, opt_state, batch, key
        )
        return params, new_state, opt_state, loss

    def with_grads(
        self,
        params: Params,
        state: State,
        opt_state: optax.OptState,
        batch: Batch,
        key: jax.Array | None = None,
    ) -> tuple[Params, State, optax.OptState, jax.Array, Params]:
        """The step, and the gradients it took (the lockstep compares them)."""
        self.traces += 1  # A Python side effect: runs once per trace under jit.
        # Deterministic models are called without `key`, so their `apply` may omit it.
        extra = {} if key is None else {"key": key}

        def loss_of(params: Params) -> tuple[jax.Array, State]:
            x = batch if self.inputs is None else self.inputs(batch)
            y, new_state = self.impl.apply(params, state, x, train=True, **extra)
            return read_loss(self.loss_fn, y, batch), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, new_state, opt_state, loss, grads


def read_loss(loss_fn: LossFn, y: Any, batch: Batch) -> jax.Array:
    """`loss_fn(y, batch)`; an output the loss cannot read (a tuple where it indexes a dict,
    say) is named with the output's structure, not only Python's indexing error."""
    try:
        return loss_fn(y, batch)
    except (TypeError, IndexError, KeyError) as e:
        name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
        raise TypeError(
            f"loss {name}: cannot read the model's output {jax.tree.structure(y)} "
            f"({type(e).__name__}: {e}); expected the structure the loss indexes"
        ) from e


def scan_body(step: TrainStep) -> Callable[[Any, Any], Any]:
    """`lax.scan`'s body for `step`: carry `(params, state, opt_state)`, one `(batch, key)`
    in, the loss and the canonical params and state out."""

    def body(carry: Any, xs: Any) -> Any:
        batch, key = xs
        params, state, opt_state = carry
        params, state, opt_state, loss = step(params, state, opt_state, batch, key)
        return (params, state, opt_state), (loss, step.impl.to_canonical(params, state))

    return body
