"""The per-step random keys the harness gives every implementation of a random model."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def step_keys(seed: int, steps: int) -> jax.Array:
    """One typed key per training step, stacked: `fold_in(key(seed), s)` for s = 0..steps-1.

    `s` counts the steps done before this one, as Flax's `TrainState.step` does, so a native
    loop that writes the usual `jax.random.fold_in(root, state.step)` draws the same keys.
    Every implementation, in every loop, receives the same key at the same step: the
    per-step loops index this array, `lax.scan` slices it. `fold_in` (rather than splitting a
    running key) makes each step's key independent of how many steps came before, so a run
    resumed after k steps draws what the uninterrupted run drew.

    **Arguments:**

    - `seed`: the run's seed (`--seed`).
    - `steps`: how many steps.
    """
    base = jax.random.key(seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(steps))
