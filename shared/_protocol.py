"""The protocol every implementation follows, so that the harness can train any of them.

An implementation is one model written in one framework. It keeps its params and state in
whatever pytrees its framework uses ("native"), and converts them to and from flat
dictionaries of arrays under canonical names ("canonical"), such as `{"bias": ...}` and
`{"mean": ...}`. The harness differentiates `apply` with respect to the native params, threads
the native state through, and records every step under canonical names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
"""One step's data: for the bias adder, the input array `x` of shape (batch, features); for
the MLP, a `Labelled(x, labels)`."""


class NativeLoop(NamedTuple):
    """A framework's own training loop, one step at a time.

    **Fields:**

    - `step`: `batch -> loss`; one step of the framework's idiomatic jitted training step,
      which keeps its model, state and optimizer state wherever that framework keeps them.
    - `read`: `() -> (params, state)`, the current values in native form.
    """

    step: Callable[[Batch], jax.Array]
    read: Callable[[], tuple[Params, State]]


@dataclass(frozen=True)
class BiasAdderConfig:
    """Hyperparameters of the running-mean bias adder, shared by every framework.

    **Arguments:**

    - `features`: the size D of the last input axis, and of `bias` and `mean`.
    - `momentum`: the EMA coefficient m in `mean <- m * mean + (1 - m) * batch_mean`, in [0, 1).
    - `seed_faithful`: update `mean` with `keepdims=True`, as the Flax docs seed does, so that
      it turns from shape (D,) into (1, D) after the first training call.
    - `axis_name`: when set, the batch mean is averaged over this named axis (`lax.pmean`), so
      that data-parallel replicas keep one synchronised state.
    """

    features: int
    momentum: float = 0.9
    seed_faithful: bool = False
    axis_name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.features, bool) or not isinstance(self.features, int):
            raise TypeError(f"features must be an int, got {type(self.features).__name__}")
        if self.features < 1:
            raise ValueError(f"features must be >= 1, got {self.features}")
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, int | float):
            raise TypeError(f"momentum must be a float, got {type(self.momentum).__name__}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


@runtime_checkable
class Implementation(Protocol):
    """One model in one framework, as the harness sees it.

    Build one with a factory that takes the model's config (for the bias adder, a
    [`BiasAdderConfig`][]); the registry and `--impl MODULE:ATTR` both call `ATTR(config)`.

    **Attributes:**

    - `name`: a short identifier used in reports and error messages, e.g. `"flax_linen"`.
    - `model`: which model this is, e.g. `"bias-adder"`.
    """

    name: str
    model: str

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Params, State]:
        """Create params and state for inputs shaped like `x`, without updating the state."""
        ...

    def apply(
        self, params: Params, state: State, x: jax.Array, *, train: bool
    ) -> tuple[jax.Array, State]:
        """Run the model; a pure function that `jax.jit` and `jax.grad` can transform.

        With `train=True` the state is updated and the new state returned; with `train=False`
        the stored state is used and returned unchanged.
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

        `run_native` calls `step(batch)` once per batch and `read()` after each step to record
        it; benchmarks call `step` alone. Implementations without it have no "native" loop.
        """
        ...


ImplementationFactory: TypeAlias = Callable[[Any], Implementation]
"""What the registry holds and `--impl MODULE:ATTR` names: config -> implementation.

The config is the model's: a [`BiasAdderConfig`][] for the bias adder, an `MlpBnConfig` for
the MLP with BatchNorm."""
