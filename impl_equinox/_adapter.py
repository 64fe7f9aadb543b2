"""The adapter from an Equinox model to the harness: `eqx.partition` once, `eqx.combine` per call.

An Equinox model is an immutable pytree of its arrays and its static parts, and its state
lives apart, in the `eqx.nn.State` that `eqx.nn.make_with_state` makes next to it. The
harness differentiates a pytree of arrays, so the adapter partitions the model once into its
inexact arrays (the params) and everything else (static, closed over); every call combines
them again, switched to training or inference by `eqx.nn.inference_mode`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any, Generic, Protocol, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PyTree

from shared import Canonical, LayerCall, LayerTrace, NativeLoop

from ._canonical import (
    equinox_canonical,
    equinox_from_canonical,
    equinox_state_canonical,
    equinox_state_from_canonical,
)
from ._native import EquinoxStep, equinox_native_loop

ConfigT = TypeVar("ConfigT")
ModelT = TypeVar("ModelT", bound=eqx.Module)


class StatefulModel(Protocol):
    """A model called on a batch and its state: `model(x, state) -> (y, state)`."""

    def __call__(
        self, x: Any, state: eqx.nn.State | None, /
    ) -> tuple[Array, eqx.nn.State | None]: ...


class EquinoxAdapter(Generic[ConfigT, ModelT]):
    """An Equinox model behind the harness protocol; its state is the `eqx.nn.State` of its
    `StateIndex`es, or `None` for a model without one.

    Subclasses set `model`, `train_step` (the model's own `@eqx.filter_jit` step, as a
    `staticmethod`), the rename maps (derived Equinox name -> canonical name, where they
    differ) and `transposed` (the canonical names of `eqx.nn.Linear` weights, which Equinox
    stores as (out, in)), and define `make` (the model and its state for the config) and
    `check` (the model's input check).
    """

    name = "equinox"
    model = ""
    train_step: EquinoxStep  # a staticmethod: called as a plain function
    params_rename: Mapping[str, str] = {}
    state_rename: Mapping[str, str] = {}
    transposed: Collection[str] = ()
    batch_axis: str | None = None
    """The named `jax.vmap` axis of a model called on one example (`apply` maps it over the
    batch), or `None` for a model called on the whole batch."""

    def __init__(self, config: ConfigT):
        self.config = config
        model, _ = self.make(jax.random.key(0))
        # --8<-- [start:equinox-split]
        params, static = eqx.partition(model, eqx.is_inexact_array)
        # --8<-- [end:equinox-split]
        self.static = static

    def make(self, key: jax.Array) -> tuple[ModelT, eqx.nn.State | None]:
        """A new model for this config, its arrays drawn from `key`, and its state."""
        raise NotImplementedError

    def check(self, x: Any) -> None:
        """Check the input, naming `self.name` in the error."""

    def init(self, key: jax.Array, x: Any) -> tuple[PyTree, eqx.nn.State | None]:
        self.check(x)
        model, state = self.make(key)  # make_with_state never calls the model
        return eqx.filter(model, eqx.is_inexact_array), state

    def combine(self, params: PyTree) -> ModelT:
        """The model holding `params`."""
        static = self.static
        model: ModelT
        # --8<-- [start:equinox-merge]
        model = eqx.combine(params, static)
        # --8<-- [end:equinox-merge]
        return model

    def apply(
        self,
        params: PyTree,
        state: eqx.nn.State | None,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, eqx.nn.State | None]:
        self.check(x)
        model: StatefulModel
        # --8<-- [start:equinox-eval]
        model = eqx.nn.inference_mode(eqx.combine(params, self.static), value=not train)
        return model(x, state)
        # --8<-- [end:equinox-eval]

    def layer_trace(
        self,
        params: PyTree,
        state: eqx.nn.State | None,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> LayerTrace:
        """The forward pass, every submodule's call recorded. Equinox has no hooks: the
        model, an immutable pytree, is rebuilt with each submodule wrapped in a `Recorded`
        module (`eqx.tree_at`). A per-example model (`batch_axis`) is recorded inside the
        same `jax.vmap` that batches it, and its records mapped out with the outputs; a
        layer that the model's own code `vmap`s inside (the bias stack's) cannot be recorded
        this way: its values would leak out of that `vmap`."""
        model = eqx.nn.inference_mode(self.combine(params), value=not train)
        order: list[str] = []

        def record(x: Any, state: eqx.nn.State | None) -> list[tuple[Any, Any]]:
            calls: dict[str, LayerCall] = {}
            # --8<-- [start:equinox-layer-trace]
            recorded = recording(model, "", calls)  # every submodule wrapped
            y = recorded(x, state)
            # --8<-- [end:equinox-layer-trace]
            calls[""] = LayerCall(x, _first(y))
            order[:] = list(calls)
            return [(c.input, c.output) for c in calls.values()]

        if self.batch_axis is None:
            values = record(x, state)
        else:
            batched = jax.vmap(record, axis_name=self.batch_axis, in_axes=(0, None))
            values = batched(x, state)
        return {path: LayerCall(*v) for path, v in zip(order, values, strict=True)}

    def to_canonical(
        self, params: PyTree, state: eqx.nn.State | None
    ) -> tuple[Canonical, Canonical]:
        cparams = equinox_canonical(params, self.params_rename)
        for name in self.transposed:  # Equinox stores (out, in): canonical is (in, out)
            cparams[name] = cparams[name].T
        return cparams, {} if state is None else self.state_to_canonical(state)

    def state_to_canonical(self, state: eqx.nn.State) -> Canonical:
        """The state's canonical names: its `StateIndex`es' paths, renamed."""
        return equinox_state_canonical(self.static, state, self.state_rename)

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[PyTree, eqx.nn.State | None]:
        model, native_state = self.make(jax.random.key(0))
        values = {k: jnp.asarray(v).T if k in self.transposed else v for k, v in params.items()}
        try:
            model = equinox_from_canonical(model, values, self.params_rename)
            if native_state is not None:
                native_state = self.state_from_canonical(model, native_state, state)
            elif state:
                raise ValueError(
                    f"unexpected canonical state entry {sorted(state)[0]!r}; the model has "
                    "no StateIndex"
                )
        except ValueError as e:
            raise ValueError(f"{self.name}: canonical {self.model} weights: {e}") from None
        return eqx.filter(model, eqx.is_inexact_array), native_state

    def state_from_canonical(
        self, model: ModelT, template: eqx.nn.State, state: Canonical
    ) -> eqx.nn.State:
        """A new `eqx.nn.State` for `model`, like `template`, holding the canonical `state`."""
        return equinox_state_from_canonical(model, template, state, self.state_rename)

    def native_loop(
        self, params: PyTree, state: eqx.nn.State | None, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return equinox_native_loop(self.train_step, self.combine(params), state, tx)


# --8<-- [start:equinox-layer-recorded]
class Recorded(eqx.Module):
    """A submodule, called as before, its input and output recorded under its path."""

    layer: Any
    path: str = eqx.field(static=True)
    calls: Any = eqx.field(static=True)  # a dict, compared and hashed by identity

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        out = self.layer(x, *args, **kwargs)
        self.calls.record(self.path, LayerCall(x, _first(out)))
        return out


# --8<-- [end:equinox-layer-recorded]


class _Sink:
    """Where `Recorded` writes (static: hashed by identity)."""

    def __init__(self, calls: dict[str, LayerCall]):
        self.calls = calls

    def record(self, path: str, call: LayerCall) -> None:
        self.calls[path] = call


def recording(module: eqx.Module, path: str, calls: dict[str, LayerCall]) -> Any:
    """`module` with every callable submodule (fields, and tuples or lists of them: an
    `eqx.nn.Sequential`'s layers) wrapped in a `Recorded`, children first."""
    sink = _Sink(calls)

    def walk(module: eqx.Module, path: str) -> eqx.Module:
        for f in dataclasses.fields(module):
            value = getattr(module, f.name)
            child = f"{path}.{f.name}" if path else f.name
            if _is_layer(value):
                new: Any = Recorded(walk(value, child), child, sink)
            elif isinstance(value, (tuple, list)) and any(_is_layer(v) for v in value):
                new = type(value)(
                    Recorded(walk(v, f"{child}.{i}"), f"{child}.{i}", sink) if _is_layer(v) else v
                    for i, v in enumerate(value)
                )
            else:
                continue
            module = eqx.tree_at(_getter(f.name), module, new)
        return module

    return walk(module, path)


def _is_layer(value: Any) -> bool:
    return (
        isinstance(value, eqx.Module)
        and callable(value)
        and not isinstance(value, eqx.nn.StateIndex)
    )


def _first(out: Any) -> Any:
    """A stateful layer's `(y, state)` -> `y`; any other output as it is."""
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], eqx.nn.State):
        return out[0]
    return out


def _getter(name: str) -> Callable[[Any], Any]:
    """The field `name` of a module, as `eqx.tree_at` wants its `where`."""
    return lambda m: getattr(m, name)
