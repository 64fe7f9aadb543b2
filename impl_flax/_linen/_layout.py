"""Linen's native checkpoint as `checkpoint convert` reads and writes it: a `TrainState`."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax
from flax.training import train_state


class LinenLayout:
    """A `TrainState`: `step` (int32), `params`, `opt_state` (optax's own tuple of states,
    `EmptyState()` where a transformation keeps nothing) and the model's collections as
    fields of their own (`batch_stats`; the dropout loop's root `key`)."""

    description = (
        "Flax Linen's TrainState (step int32, params, opt_state as optax's tuple, batch_stats)"
    )

    def mirrored(self, tree: train_state.TrainState) -> Any:
        """What optax's state mirrors: the params."""
        return tree.params

    def optimizer(
        self, tree: train_state.TrainState, tx: optax.GradientTransformation
    ) -> tuple[optax.OptState, Any]:
        """Optax's state as it is, and the step counter (`apply_gradients` counts it)."""
        return tree.opt_state, tree.step

    def with_optimizer(
        self,
        tree: train_state.TrainState,
        tx: optax.GradientTransformation,
        opt_state: optax.OptState,
        step: int,
    ) -> train_state.TrainState:
        """`tree` holding `opt_state` and the step as Linen counts it (int32)."""
        return tree.replace(opt_state=opt_state, step=jnp.asarray(step, jnp.int32))
