"""Equinox's other recommended ways to run a training step ("native variants"), for any model.

`eqx.filter_jit` partitions its arguments into arrays and static parts, and flattens the
model, state and optimizer state, at every call. Two ways to pay that once, before the loop:
`partition` (`eqx.partition` outside a plain `jax.jit`, `eqx.combine` inside) and `flat`
(the *Low-overhead training loops* trick of Equinox's docs: flatten once, hand the step a
flat list of leaves). Both compile the model's own train step, undecorated.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

import equinox as eqx
import jax
import optax
from jaxtyping import Array, PyTree

from shared import Batch, NativeLoop

from ._native import EquinoxStep


def equinox_variants(
    train_step: EquinoxStep,
    model: eqx.Module,
    state: eqx.nn.State | None,
    tx: optax.GradientTransformation,
) -> dict[str, NativeLoop]:
    """Equinox's variants: `partition` and `flat`.

    **Arguments:**

    - `train_step`: the model's `@eqx.filter_jit` train step; the variants compile the
      function it decorates (`eqx.filter_jit` keeps it as `__wrapped__`, as
      `functools.wraps` does) in their own way.
    - `model`, `state`: the initial module and its `eqx.nn.State` (immutable pytrees, so the
      variants can all start from them).
    - `tx`: the harness's optax transformation.
    """
    step_fn: EquinoxStep = inspect.unwrap(train_step)
    return {
        "partition": _equinox_partition(step_fn, model, state, tx),
        "flat": _equinox_flat(step_fn, model, state, tx),
    }


def _equinox_partition(
    step_fn: EquinoxStep,
    model: eqx.Module,
    state: eqx.nn.State | None,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """`eqx.partition` once, outside the JIT region; plain `jax.jit` on the arrays, with the
    static part closed over and `eqx.combine`d inside. `jax.jit` still flattens the module
    and the `eqx.nn.State` by Python callbacks at every call, which `flat` avoids."""
    # --8<-- [start:equinox-variant-partition]
    params, static = eqx.partition(model, eqx.is_array)  # once, outside the JIT region
    opt_state = tx.init(params)

    @jax.jit  # params, state and opt_state are pytrees of arrays: no filtering needed
    def make_step(
        params: PyTree, state: eqx.nn.State | None, opt_state: optax.OptState, x: Batch
    ) -> tuple[PyTree, eqx.nn.State | None, optax.OptState, Array]:
        model = eqx.combine(params, static)
        model, state, opt_state, loss = step_fn(model, state, opt_state, x, tx)
        return eqx.filter(model, eqx.is_array), state, opt_state, loss

    # --8<-- [end:equinox-variant-partition]

    def step(x: Batch) -> Array:
        nonlocal params, state, opt_state
        params, state, opt_state, loss = make_step(params, state, opt_state, x)
        return cast(Array, loss)

    return NativeLoop(step, lambda: (eqx.combine(params, static), state))


def _equinox_flat(
    step_fn: EquinoxStep,
    model: eqx.Module,
    state: eqx.nn.State | None,
    tx: optax.GradientTransformation,
) -> NativeLoop:
    """Equinox's *Low-overhead training loops*: the flattening on the way into the JIT
    region cancelled out by the unflattening on the way out, by keeping a flat list.

    The docs flatten the whole model and keep `eqx.filter_jit`, which still filters that
    list at every call (measured at B8xD4 on CPU: 2.7x the pure-JAX step, above `partition`'s
    2x). Flattening the partitioned arrays leaves nothing to filter, so plain `jax.jit`
    takes the list, which it flattens in C++ (0.8x: no Python at all between the calls)."""
    # --8<-- [start:equinox-fast-loop]
    params, static = eqx.partition(model, eqx.is_array)
    flat, treedef = jax.tree_util.tree_flatten((params, state, tx.init(params)))  # once

    @jax.jit
    def make_step(flat: list[Any], x: Batch) -> tuple[list[Any], Array]:
        params, state, opt_state = jax.tree_util.tree_unflatten(treedef, flat)
        model = eqx.combine(params, static)
        model, state, opt_state, loss = step_fn(model, state, opt_state, x, tx)
        params = eqx.filter(model, eqx.is_array)
        return jax.tree_util.tree_leaves((params, state, opt_state)), loss

    # --8<-- [end:equinox-fast-loop]

    def step(x: Batch) -> Array:
        nonlocal flat
        flat, loss = make_step(flat, x)
        return cast(Array, loss)

    def read() -> tuple[eqx.Module, eqx.nn.State | None]:
        params, state, _ = jax.tree_util.tree_unflatten(treedef, flat)
        return eqx.combine(params, static), state

    return NativeLoop(step, read)
