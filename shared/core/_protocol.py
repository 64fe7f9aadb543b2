"""The protocol every implementation follows, so that the harness can train any of them.

An implementation is one model written in one framework. It keeps its params and state in
whatever pytrees its framework uses ("native"), and converts them to and from flat
dictionaries of arrays under canonical names ("canonical"), such as `{"bias": ...}` and
`{"bn.mean": ...}`. The harness differentiates `apply` with respect to the native params,
threads the native state through, and records every step under canonical names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, TypeAlias, runtime_checkable

import jax
import optax

Params: TypeAlias = Any
"""A framework's own pytree of trainable parameters (differentiated by the harness)."""
State: TypeAlias = Any
"""A framework's own pytree of non-trainable state (threaded through by the harness)."""
Canonical: TypeAlias = Mapping[str, jax.Array]
"""Flat mapping from a canonical dotted name (`"bias"`, `"bn.mean"`, ...) to an array."""
Batch: TypeAlias = Any
"""One step's data, as the model's spec lays it out (an array, or a pytree such as inputs
and labels). The spec's `inputs` picks what the model sees of it."""


class LayerCall(NamedTuple):
    """What one layer (module) took and gave in a forward pass.

    **Fields:** `input`: its first positional argument (an array, or a pytree of arrays);
    `output`: what it returned (for a layer that returns `(y, state)`, as Equinox's
    stateful layers do, `y`).
    """

    input: Any
    output: Any


LayerTrace: TypeAlias = Mapping[str, LayerCall]
"""A forward pass seen layer by layer: canonical layer path (`"block1.conv2"`; `""` for the
model itself) -> its `LayerCall`, in the order the layers returned (a layer after the
layers it calls)."""


class NativeLoop(NamedTuple):
    """A framework's own training loop, one step at a time.

    **Fields:**

    - `step`: `batch -> loss`, or `(batch, key) -> loss` for a model whose spec says it is
      random (`ModelSpec.random`); one step of the framework's idiomatic jitted training
      step, which keeps its model, state and optimizer state wherever that framework keeps
      them.
    - `read`: `() -> (params, state)`, the current values in native form.
    - `checkpoint`: `() -> tree`, everything the loop needs to go on (params, state,
      optimizer state, step, RNG state), as the framework hands it to orbax: a Linen
      `TrainState`, NNX's `nnx.state(...)`, ... (`None`: the loop cannot be checkpointed).
    - `restore`: `tree -> None`, loads such a tree (restored against `checkpoint()`'s
      shapes and dtypes) into the loop's objects, which then go on from there.
    """

    step: Callable[..., jax.Array]
    read: Callable[[], tuple[Params, State]]
    checkpoint: Callable[[], Any] | None = None
    restore: Callable[[Any], None] | None = None


@runtime_checkable
class Implementation(Protocol):
    """One model in one framework, as the harness sees it.

    Build one with a factory that takes the model's config; the registry and
    `--impl MODULE:ATTR` both call `ATTR(config)`.

    **Attributes:**

    - `name`: a short identifier used in reports and error messages, e.g. `"flax_linen"`.
    - `model`: which model this is; it must be the name of the model's spec.
    """

    name: str
    model: str

    def init(self, key: jax.Array, x: Any) -> tuple[Params, State]:
        """Create params and state for inputs shaped like `x`, without updating the state."""
        ...

    def apply(
        self, params: Params, state: State, x: Any, *, train: bool, key: jax.Array | None = None
    ) -> tuple[jax.Array, State]:
        """Run the model; a pure function that `jax.jit` and `jax.grad` can transform.

        With `train=True` the state is updated and the new state returned; with `train=False`
        the stored state is used and returned unchanged. `key` is the step's random key,
        which the harness derives the same way for every implementation (see
        [`step_keys`][]); it is passed only to models whose spec says they are random, so a
        deterministic model may leave the argument out.
        """
        ...

    def to_canonical(self, params: Params, state: State) -> tuple[Canonical, Canonical]:
        """Native params and state -> canonical dictionaries. Must be traceable."""
        ...

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[Params, State]:
        """Canonical dictionaries -> native params and state."""
        ...

    def native_loop(
        self, params: Params, state: State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """Optional: the framework's own idiomatic training loop, started from params and state.

        `run_native` calls `step(batch)` once per batch (`step(batch, key)` for a random
        model) and `read()` after each step to record it; benchmarks call `step` alone.
        Implementations without it have no "native" loop.
        """
        ...

    def layer_trace(
        self, params: Params, state: State, x: Any, *, train: bool, key: jax.Array | None = None
    ) -> LayerTrace:
        """Optional: `apply`'s forward pass, seen layer by layer (see `LayerTrace`).

        Each framework's adapter base implements it its own way (Linen and Haiku intercept
        module methods, NNX, Equinox and Keras wrap their submodules for one call); the
        comparison calls it only at a pair's first diverging lockstep step, to name the
        first layer whose output differs while its input agrees. Must be traceable.
        """
        ...

    def native_variants(
        self, params: Params, state: State, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        """Optional: the framework's other recommended ways to run its training step, by name.

        Each is a [`NativeLoop`][] started from `params` and `state`, written as the
        framework's own performance guidance writes it (NNX's `nnx.cached_partial`, Equinox's
        `eqx.partition` outside `jax.jit`, Linen's plain dicts, Keras's `stateless_call`,
        ...). `state-rosetta bench` times each one as the path `native:NAME`, and each must
        train like the harness step (`tests/core/test_native_variants.py`).
        """
        ...


ImplementationFactory: TypeAlias = Callable[[Any], Implementation]
"""What the registry holds and `--impl MODULE:ATTR` names: config -> implementation."""

REQUIRED = ("name", "model", "init", "apply", "to_canonical", "from_canonical")
"""The attributes an implementation must have (`native_loop`, `native_variants` and
`layer_trace` are optional)."""
