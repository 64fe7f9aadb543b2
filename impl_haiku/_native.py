"""Haiku's native training loop, shared by the models: params, state and optimizer state
threaded through a `jax.jit`-compiled step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import haiku as hk
import optax
from jaxtyping import Array

from shared import Batch, NativeLoop

HaikuStep = Callable[
    [hk.Params, hk.State, optax.OptState, Batch], tuple[hk.Params, hk.State, optax.OptState, Array]
]
"""A model's jitted Haiku train step: `(params, state, opt_state, batch) -> (params, state,
opt_state, loss)`."""


def haiku_native_loop(
    train_step: HaikuStep,
    params: hk.Params,
    state: hk.State,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """`train_step(params, state, opt_state, batch) -> (params, state, opt_state, loss)`."""
    # --8<-- [start:haiku-optimizer-setup]
    opt_state = tx.init(params)
    # --8<-- [end:haiku-optimizer-setup]

    def step(batch: Batch, *key: Array) -> Array:  # a random model's step takes its key
        nonlocal params, state, opt_state
        params, state, opt_state, loss = train_step(params, state, opt_state, batch, *key)
        return loss

    # --8<-- [start:haiku-checkpoint]
    # Haiku's params and state are plain nested dicts, optax's state a tuple of NamedTuples:
    # all three are pytrees that orbax writes as they are.
    def checkpoint() -> dict[str, Any]:
        return {"params": params, "state": state, "opt_state": opt_state}

    def restore(restored: dict[str, Any]) -> None:  # against a fresh init's dicts
        nonlocal params, state, opt_state
        params, state, opt_state = restored["params"], restored["state"], restored["opt_state"]

    # --8<-- [end:haiku-checkpoint]
    return NativeLoop(step, lambda: (params, state), checkpoint, restore)
