"""Initializers that Flax's `initializers` (JAX's `jax.nn.initializers`) lack, for both APIs."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array


def identity_init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    """A kernel initializer: the identity matrix (`nn.initializers` has none)."""
    del key  # deterministic
    n, m = shape  # a kernel: (fan_in, fan_out)
    return jnp.eye(n, m, dtype=dtype)
