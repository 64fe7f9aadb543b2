"""The per-step random keys the harness gives every implementation of a random model."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def step_keys(seed: int, steps: int) -> jax.Array:
    """One typed key per training step, stacked: `fold_in(key(seed), s)` for s = 1..steps.

    Every implementation, in every loop, receives the same key at the same step: the
    per-step loops index this array, `lax.scan` slices it. `fold_in` (rather than splitting a
    running key) makes step s's key independent of how many steps came before, so a run
    resumed at step k draws what the uninterrupted run drew.

    **Arguments:**

    - `seed`: the run's seed (`--seed`).
    - `steps`: how many steps.
    """
    base = jax.random.key(seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(1, steps + 1))
