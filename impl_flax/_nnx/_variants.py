"""NNX's other recommended ways to run a training step ("native variants"), for any model.

The ways the *Performance considerations* guide and the tree-mode API offer to cut
`nnx.jit`'s per-call graph traversal: `nnx.cached_partial`, the functional
`nnx.split`/`nnx.merge` loop around plain `jax.jit` (as the guide writes it, and with its
state stripped of Variables and donated), tree mode (`graph=False`) and its bound form
`nnx.jit_partial`, the one Flax's own `benchmarks/nnx_graph_overhead.py` times.

Each builder takes the model's own `@nnx.jit` train step, so that every model gets the same
variants with one call.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, cast

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jaxtyping import Array

from shared import Batch, NativeLoop

from ._native import NNXStep


def nnx_variants(
    train_step: NNXStep, model: nnx.Module, tx: optax.GradientTransformation
) -> dict[str, NativeLoop]:
    """NNX's variants: `cached-partial`, `split-merge`, `split-merge-pure`, `pure-dict`,
    `tree-mode` and `jit-partial`.

    **Arguments:**

    - `train_step`: the model's `@nnx.jit` train step, as `nnx_native_loop` takes it. The
      variants that compile it another way (plain `jax.jit`, tree mode) take the function
      it decorates (`nnx.jit` keeps it as `__wrapped__`, as `functools.wraps` does).
    - `model`: the model, holding the initial values (put in training mode); each variant
      trains its own clone.
    - `tx`: the harness's optax transformation.
    """
    step_fn: NNXStep = inspect.unwrap(train_step)
    model.train()
    return {
        "cached-partial": _nnx_cached_partial(train_step, nnx.clone(model), tx),
        "split-merge": _nnx_split_merge(step_fn, nnx.clone(model), tx),
        "split-merge-pure": _nnx_split_merge_pure(step_fn, nnx.clone(model), tx),
        "pure-dict": _nnx_pure_dict(step_fn, nnx.clone(model), tx),
        "tree-mode": _nnx_tree_mode(step_fn, nnx.clone(model), tx),
        "jit-partial": _nnx_jit_partial(step_fn, nnx.clone(model), tx),
    }


def _nnx_read(model: nnx.Module) -> tuple[nnx.State[Any, Any], nnx.State[Any, Any]]:
    """The model's params and state, as the adapter's `init` splits them."""
    return nnx.state(model, nnx.Param), nnx.state(model, nnx.BatchStat)


def _nnx_cached_partial(
    train_step: NNXStep, model: nnx.Module, tx: optax.GradientTransformation
) -> NativeLoop:
    """The guide's "Caching graph node traversals": the `@nnx.jit` step, its graph nodes
    bound once."""
    # --8<-- [start:nnx-variant-cached-partial]
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    # The model's and optimizer's graph is traversed once, here, instead of at every call;
    # their Variables are shared with the cached copies, so updates land in `model`.
    cached_train_step = nnx.cached_partial(train_step, model, optimizer)
    # --8<-- [end:nnx-variant-cached-partial]
    return NativeLoop(cached_train_step, lambda: _nnx_read(model))


def _nnx_split_merge(
    step_fn: NNXStep, model: nnx.Module, tx: optax.GradientTransformation
) -> NativeLoop:
    """The guide's "Functional training loop": split once, merge inside a plain `jax.jit`
    step, thread the state, and `nnx.update` the objects when their values are wanted."""
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    # --8<-- [start:nnx-variant-split-merge]
    graphdef, state = nnx.split((model, optimizer))  # once, before the loop

    @jax.jit  # plain JAX: the graph traversal is traced once, not run at every call
    def jax_train_step(
        graphdef: nnx.GraphDef[Any], state: nnx.State[Any, Any], x: Batch
    ) -> tuple[Array, nnx.State[Any, Any]]:
        model, optimizer = nnx.merge(graphdef, state)
        loss = step_fn(model, optimizer, x)  # the model's own step, undecorated
        return loss, nnx.state((model, optimizer))

    # --8<-- [end:nnx-variant-split-merge]

    def step(x: Batch) -> Array:
        nonlocal state
        loss, state = jax_train_step(graphdef, state, x)
        return cast(Array, loss)

    def read() -> tuple[nnx.State[Any, Any], nnx.State[Any, Any]]:
        nnx.update((model, optimizer), state)  # the guide's "update objects after training"
        return _nnx_read(model)

    return NativeLoop(step, read)


def _nnx_split_merge_pure(
    step_fn: NNXStep, model: nnx.Module, tx: optax.GradientTransformation
) -> NativeLoop:
    """The functional loop, trimmed of what `jax.jit` still does in Python at every call:
    `nnx.as_pure` threads plain arrays instead of Variables (each a pytree node flattened by
    a Python callback), the fixed `graphdef` is closed over instead of compared, and the
    old state is donated, as `nnx.jit`'s docs advise for a model and its optimizer."""
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    # --8<-- [start:nnx-variant-split-merge-pure]
    graphdef, state = nnx.split((model, optimizer))
    state = nnx.as_pure(state)  # plain arrays: no Variable to flatten at every call

    @functools.partial(jax.jit, donate_argnums=0)  # XLA may write the new state in place
    def jax_train_step(state: nnx.State[Any, Any], x: Batch) -> tuple[Array, nnx.State[Any, Any]]:
        model, optimizer = nnx.merge(graphdef, state)
        loss = step_fn(model, optimizer, x)
        return loss, nnx.as_pure(nnx.state((model, optimizer)))

    # --8<-- [end:nnx-variant-split-merge-pure]
    # A copy of its own: the first step donates it, and `model` still holds the caller's.
    state = jax.tree.map(jnp.copy, state)

    def step(x: Batch) -> Array:
        nonlocal state
        loss, state = jax_train_step(state, x)
        return cast(Array, loss)

    def read() -> tuple[nnx.State[Any, Any], nnx.State[Any, Any]]:
        # Copies: the next step donates (deletes) the buffers of `state`.
        nnx.update((model, optimizer), jax.tree.map(jnp.copy, state))
        return _nnx_read(model)

    return NativeLoop(step, read)


def _nnx_pure_dict(
    step_fn: NNXStep, model: nnx.Module, tx: optax.GradientTransformation
) -> NativeLoop:
    """The functional loop with the state as nested plain dicts (`nnx.to_pure_dict`), which
    `jax.jit` flattens in C++ like Linen's, put back into the split `State` by
    `nnx.replace_by_pure_dict` inside the trace (the checkpointing guide's pair of calls)."""
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    # --8<-- [start:nnx-fast-loop]
    graphdef, template = nnx.split((model, optimizer))
    state = nnx.to_pure_dict(template)  # nested plain dicts of arrays

    # the checkpointing guide's pair of calls, the other way
    def merge(pure: dict[str, Any]) -> tuple[nnx.Module, nnx.Optimizer[Any]]:
        full = jax.tree.map(lambda v: v, template)  # new containers: `template` stays as is
        nnx.replace_by_pure_dict(full, pure)
        return nnx.merge(graphdef, full)

    @functools.partial(jax.jit, donate_argnums=0)  # XLA may write the new state in place
    def jax_train_step(state: dict[str, Any], x: Batch) -> tuple[Array, dict[str, Any]]:
        model, optimizer = merge(state)
        loss = step_fn(model, optimizer, x)
        return loss, nnx.to_pure_dict(nnx.state((model, optimizer)))

    # --8<-- [end:nnx-fast-loop]
    state = jax.tree.map(jnp.copy, state)  # its own copy: the first step donates it

    def step(x: Batch) -> Array:
        nonlocal state
        loss, state = jax_train_step(state, x)
        return cast(Array, loss)

    def read() -> tuple[nnx.State[Any, Any], nnx.State[Any, Any]]:
        # Copies: the next step donates (deletes) the buffers of `state`.
        nnx.update((model, optimizer), nnx.state(merge(jax.tree.map(jnp.copy, state))))
        return _nnx_read(model)

    return NativeLoop(step, read)


def _nnx_tree_mode(
    step_fn: NNXStep, model: nnx.Module, tx: optax.GradientTransformation
) -> NativeLoop:
    """Tree mode: `nnx.jit(graph=False)` takes modules as plain pytrees (no shared
    references, no structural changes), and propagates Variable updates back."""
    # --8<-- [start:nnx-variant-tree-mode]
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param, graph=False)
    tree_train_step = nnx.jit(step_fn, graph=False)
    # --8<-- [end:nnx-variant-tree-mode]
    return NativeLoop(lambda x: tree_train_step(model, optimizer, x), lambda: _nnx_read(model))


def _nnx_jit_partial(
    step_fn: NNXStep, model: nnx.Module, tx: optax.GradientTransformation
) -> NativeLoop:
    """Tree mode's counterpart of `cached_partial`: model and optimizer flattened once into
    their Variables, whose new values are written back after each call."""
    # --8<-- [start:nnx-variant-jit-partial]
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param, graph=False)
    bound_train_step = nnx.jit_partial(step_fn, model, optimizer, graph=False)
    # --8<-- [end:nnx-variant-jit-partial]
    return NativeLoop(bound_train_step, lambda: _nnx_read(model))
