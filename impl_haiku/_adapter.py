"""The adapter from a Haiku model to the harness: `hk.transform_with_state`'s `init` and `apply`.

A transformed Haiku model is a pair of pure functions: `init` runs the forward pass once and
returns params and state apart, each `{module name: {variable name: array}}`, and `apply`
takes them side by side and returns the output and the new state. Nothing is split or
merged; the train/eval switch is the forward pass's own `is_training` argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import haiku as hk
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

from shared import Canonical, LayerCall, LayerTrace, NativeLoop

from ._canonical import haiku_canonical, haiku_from_canonical
from ._native import HaikuStep, haiku_native_loop


class Config(Protocol):
    """What the adapter reads of a model's config: the input's feature size."""

    @property
    def features(self) -> int: ...


ConfigT = TypeVar("ConfigT", bound=Config)


class HaikuAdapter(Generic[ConfigT]):
    """A transformed Haiku model behind the harness protocol, its forward pass called as
    `forward(x, is_training)`.

    Subclasses set `model`, `make_train_step` (`(forward, tx) -> jitted step`, the model's
    own, as a `staticmethod`) and the rename maps (derived Haiku name -> canonical name, where
    they differ), and define `make` (the transformed model for the config) and `check` (the
    model's input check).
    """

    name = "haiku"
    model = ""
    # A staticmethod: called as a plain function.
    make_train_step: Callable[[hk.TransformedWithState, optax.GradientTransformation], HaikuStep]
    params_rename: Mapping[str, str] = {}
    state_rename: Mapping[str, str] = {}

    def __init__(self, config: ConfigT):
        self.config = config
        self.forward = self.make()

    def make(self) -> hk.TransformedWithState:
        """The transformed model for this config."""
        raise NotImplementedError

    def check(self, x: Any) -> None:
        """Check the input, naming `self.name` in the error."""

    def init(self, key: jax.Array, x: Any) -> tuple[hk.Params, hk.State]:
        self.check(x)
        # --8<-- [start:haiku-init]
        params, state = self.forward.init(key, x, is_training=True)  # runs __call__ once
        # --8<-- [end:haiku-init]
        return params, state

    def apply(
        self,
        params: hk.Params,
        state: hk.State,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, hk.State]:
        self.check(x)
        # --8<-- [start:haiku-eval]
        return self.forward.apply(params, state, x, is_training=train)
        # --8<-- [end:haiku-eval]

    def layer_trace(
        self,
        params: hk.Params,
        state: hk.State,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> LayerTrace:
        """`apply`, every module's `__call__` recorded by a Haiku method interceptor."""
        calls: dict[str, LayerCall] = {}

        # --8<-- [start:haiku-layer-trace]
        def record(
            next_f: Callable[..., Any],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            context: hk.MethodContext,
        ) -> Any:
            out = next_f(*args, **kwargs)
            if context.method_name == "__call__":
                calls[layer_path(context.module.module_name)] = LayerCall(args[0], out)
            return out

        with hk.intercept_methods(record):  # every module method called inside the block
            self.apply(params, state, x, train=train, key=key)
        # --8<-- [end:haiku-layer-trace]
        return calls

    def to_canonical(self, params: hk.Params, state: hk.State) -> tuple[Canonical, Canonical]:
        return (
            haiku_canonical(params, self.params_rename),
            haiku_canonical(state, self.state_rename),
        )

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[hk.Params, hk.State]:
        x = jax.ShapeDtypeStruct((1, self.config.features), jnp.float32)
        template_params, template_state = jax.eval_shape(
            lambda key, x: self.forward.init(key, x, is_training=True), jax.random.key(0), x
        )
        try:
            return (
                haiku_from_canonical(template_params, params, self.params_rename),
                haiku_from_canonical(template_state, state, self.state_rename),
            )
        except ValueError as e:
            raise ValueError(f"{self.name}: canonical {self.model} weights: {e}") from None

    def native_loop(
        self, params: hk.Params, state: hk.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return haiku_native_loop(self.make_train_step(self.forward, tx), params, state, tx)


def layer_path(module_name: str) -> str:
    """A Haiku module's canonical layer path: its scope less the model's own name and
    Haiku's `~` (a module made in `__init__`), dotted: `"resnet/block1/~/conv1"` ->
    `"block1.conv1"`; the outermost module is the model itself, `""`."""
    return ".".join(part for part in module_name.split("/")[1:] if part != "~")
