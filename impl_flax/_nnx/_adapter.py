"""The adapter from an NNX model to the harness: `nnx.split` once, `nnx.merge` per call.

An NNX model keeps its values in Variables on the module itself. For pure functions of the
values, the adapter splits an abstract model once into its graphdef (structure and static
attributes, fixed) and two `nnx.State`s, the `nnx.Param`s and the `nnx.BatchStat`s, which are
what travel; every call merges the graphdef with the values it is given, switches the model
with `model.train()` or `model.eval()` and calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, cast

import jax
import optax
from flax import nnx
from jaxtyping import Array

from shared import Canonical, LayerCall, LayerTrace, NativeLoop

from ._canonical import nnx_canonical, nnx_from_canonical
from ._native import NNXStep, nnx_native_loop

NNXState: TypeAlias = nnx.State[Any, Any]
"""An `nnx.State`: attribute names (or `nnx.List` indices) to Variables or nested States."""


class Model(Protocol):
    """What the adapter calls on an NNX model: the model on its input, and NNX's train/eval
    switch (every `nnx.Module` has `train` and `eval`)."""

    def __call__(self, x: Any, /) -> Array: ...

    def train(self, **attributes: Any) -> None: ...

    def eval(self, **attributes: Any) -> None: ...


ConfigT = TypeVar("ConfigT")
ModelT = TypeVar("ModelT", bound=Model)


class NNXAdapter(Generic[ConfigT, ModelT]):
    """An NNX model behind the harness protocol: a model whose state is its `nnx.BatchStat`s.

    Subclasses set `model`, `train_step` (the model's own `@nnx.jit` step, as a
    `staticmethod`) and the rename maps (derived NNX name -> canonical name, where they
    differ), and define `make` (the model for the config) and `check` (the model's input
    check).
    """

    name = "flax_nnx"
    model = ""
    train_step: NNXStep  # a staticmethod: called as a plain function
    params_rename: Mapping[str, str] = {}
    state_rename: Mapping[str, str] = {}

    def __init__(self, config: ConfigT):
        self.config = config
        # The graph (structure and static attributes) is fixed; only the arrays travel.
        abstract = nnx.eval_shape(lambda: self.make(self.rngs(jax.random.key(0))))  # no values
        self.graphdef, self.abstract_params, self.abstract_state = self.split(abstract)

    def make(self, rngs: nnx.Rngs) -> ModelT:
        """A new model for this config, its variables drawn from `rngs`."""
        raise NotImplementedError

    def rngs(self, key: jax.Array) -> nnx.Rngs:
        """The streams `make` draws from, for the key `init` is given."""
        return nnx.Rngs(key)

    def check(self, x: Any) -> None:
        """Check the input, naming `self.name` in the error."""

    def split(self, model: ModelT) -> tuple[nnx.GraphDef[ModelT], NNXState, NNXState]:
        """The model's graphdef, params and state."""
        # nnx.split's annotation returns a variadic tuple of States (one per filter), which
        # mypy cannot unpack into names.
        # --8<-- [start:nnx-split]
        graphdef, params, state = nnx.split(model, nnx.Param, nnx.BatchStat)  # type: ignore[misc]
        # --8<-- [end:nnx-split]
        return graphdef, params, state

    def init(self, key: jax.Array, x: Any) -> tuple[NNXState, NNXState]:
        self.check(x)
        _, params, state = self.split(self.make(self.rngs(key)))  # __init__ never calls it
        return params, state

    def merge(self, params: NNXState, state: NNXState) -> ModelT:
        """A new model holding `params` and `state`."""
        graphdef = self.graphdef
        # --8<-- [start:nnx-merge]
        # copy=True: fresh Variables, so that neither a trace nor the native loop mutates
        # the caller's params and state (NNX 0.12 merges the State's Variables by reference).
        model = nnx.merge(graphdef, params, state, copy=True)
        # --8<-- [end:nnx-merge]
        return model

    def apply(
        self,
        params: NNXState,
        state: NNXState,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, NNXState]:
        self.check(x)
        model = self.merge(params, state)
        # --8<-- [start:nnx-eval]
        model.train() if train else model.eval()
        y = model(x)
        # --8<-- [end:nnx-eval]
        return y, nnx.state(model, nnx.BatchStat)

    def layer_trace(
        self,
        params: NNXState,
        state: NNXState,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> LayerTrace:
        """`apply`, every submodule's call recorded: NNX has no method interceptor, and
        `Module.sow` records only what a model's own code sows, so a fresh copy of the
        model has each submodule swapped for a `Recorded` wrapper (model surgery)."""
        calls: dict[str, LayerCall] = {}
        model = self.merge(params, state)  # a fresh copy: the surgery touches nothing else
        model.train() if train else model.eval()
        # --8<-- [start:nnx-layer-trace]
        modules = dict(nnx.iter_modules(cast(nnx.Module, model)))  # collected before the surgery
        for path, module in modules.items():
            if path:
                wrapper = Recorded(module, ".".join(map(str, path)), calls)
                _put(modules[path[:-1]], path[-1], wrapper)
        y = model(x)
        # --8<-- [end:nnx-layer-trace]
        calls[""] = LayerCall(x, y)  # the model itself returns last
        return calls

    def to_canonical(self, params: NNXState, state: NNXState) -> tuple[Canonical, Canonical]:
        return nnx_canonical(params, self.params_rename), nnx_canonical(state, self.state_rename)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[NNXState, NNXState]:
        try:
            return (
                nnx_from_canonical(self.abstract_params, params, self.params_rename),
                nnx_from_canonical(self.abstract_state, state, self.state_rename),
            )
        except ValueError as e:
            raise ValueError(f"{self.name}: canonical {self.model} weights: {e}") from None

    def native_loop(
        self, params: NNXState, state: NNXState, tx: optax.GradientTransformation
    ) -> NativeLoop:
        model = self.merge(params, state)
        assert isinstance(model, nnx.Module)  # a Model to the type checker; an nnx.Module
        return nnx_native_loop(self.train_step, model, tx)


class Recorded(nnx.Module):
    """A submodule, called as before, its input and output recorded under its path."""

    def __init__(self, layer: nnx.Module, path: str, calls: dict[str, LayerCall]):
        self.layer = layer
        self.path = path
        self.calls = _Sink(calls)

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        out = self.layer(x, *args, **kwargs)
        self.calls.record(self.path, LayerCall(x, out))
        return out


class _Sink:
    """Where `Recorded` writes (a static attribute: NNX keeps no arrays in it)."""

    def __init__(self, calls: dict[str, LayerCall]):
        self.calls = calls

    def record(self, path: str, call: LayerCall) -> None:
        self.calls[path] = call


def _put(parent: Any, part: Any, value: Any) -> None:
    if isinstance(part, int):
        parent[part] = value
    else:
        setattr(parent, part, value)
