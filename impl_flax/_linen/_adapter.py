"""The adapter from a Linen module to the harness: `init`, `flax.core.pop`, `apply(mutable=...)`.

A Linen module holds no values: `init` runs it once and returns its variables, a dict of
collections, and `apply` takes them back. The params are the `"params"` collection and the
state every other one (here `{"batch_stats": ...}`); a training call returns the new state
of the collections it is told are `mutable`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, cast

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.typing import Collection, VariableDict
from jaxtyping import Array

from shared import Batch, Canonical, LayerCall, LayerTrace, NativeLoop

from ._canonical import linen_canonical, linen_from_canonical
from ._native import TrainState, linen_native_loop

LinenStep = Callable[[TrainState, Batch], tuple[TrainState, Array]]
"""A model's jitted Linen train step: `(train_state, batch) -> (train_state, loss)`."""


class LinenAdapter:
    """A Linen module behind the harness protocol: a module called as `module(x, train=...)`
    whose state is its `batch_stats` collection.

    Subclasses set `model`, `train_step` (the model's own step, as a `staticmethod`) and the
    rename maps (derived Linen name -> canonical name, where they differ), and define `make`
    (the module for the config) and `check` (the model's input check).
    """

    name = "flax_linen"
    model = ""
    train_step: LinenStep  # a staticmethod: called as a plain function
    params_rename: Mapping[str, str] = {}
    state_rename: Mapping[str, str] = {}

    def __init__(self, config: Any):
        self.config = config
        self.module = self.make()  # holds no values: they come in as arguments

    def make(self) -> nn.Module:
        """The Linen module for this config."""
        raise NotImplementedError

    def check(self, x: Any) -> None:
        """Check the input, naming `self.name` in the error."""

    def init(self, key: jax.Array, x: Any) -> tuple[Collection, VariableDict]:
        self.check(x)
        # --8<-- [start:linen-init]
        variables = self.module.init(key, x, train=True)  # runs __call__ once, in training mode
        # --8<-- [end:linen-init]
        # --8<-- [start:linen-split]
        state, params = flax.core.pop(variables, "params")
        # --8<-- [end:linen-split]
        return params, state

    def apply(
        self,
        params: Collection,
        state: VariableDict,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, VariableDict]:
        self.check(x)
        # --8<-- [start:linen-eval]
        if not train:
            y = self.module.apply({"params": params, **state}, x, train=False)
            return cast(Array, y), state  # apply's annotation is a union: it covers `mutable=`
        # --8<-- [end:linen-eval]
        return cast(
            tuple[Array, VariableDict],
            self.module.apply({"params": params, **state}, x, train=True, mutable=list(state)),
        )

    def layer_trace(
        self,
        params: Collection,
        state: VariableDict,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> LayerTrace:
        """`apply`, every module's `__call__` recorded by a Linen method interceptor
        (`capture_intermediates` records outputs only; the inputs are needed too)."""
        calls: dict[str, LayerCall] = {}

        # --8<-- [start:linen-layer-trace]
        def record(
            next_fun: Callable[..., Any],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            context: nn.module.InterceptorContext,
        ) -> Any:
            out = next_fun(*args, **kwargs)
            if context.method_name == "__call__":
                calls[".".join(context.module.path)] = LayerCall(args[0], out)
            return out

        with nn.intercept_methods(record):  # every bound module's methods inside the block
            self.apply(params, state, x, train=train, key=key)
        # --8<-- [end:linen-layer-trace]
        return calls

    def to_canonical(self, params: Collection, state: VariableDict) -> tuple[Canonical, Canonical]:
        return (
            linen_canonical(params, self.params_rename),
            linen_canonical(state["batch_stats"], self.state_rename),
        )

    def abstract_variables(self, *, train: bool = True) -> Any:
        """The variables `init` makes, as shapes and dtypes (`jax.eval_shape`: no values)."""
        x = jax.ShapeDtypeStruct((1, self.config.features), jnp.float32)
        init = functools.partial(self.module.init, train=train)
        return jax.eval_shape(init, jax.random.key(0), x)

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[Collection, VariableDict]:
        template_state, template_params = flax.core.pop(self.abstract_variables(), "params")
        try:
            return (
                linen_from_canonical(template_params, params, self.params_rename),
                {
                    "batch_stats": linen_from_canonical(
                        template_state["batch_stats"], state, self.state_rename
                    )
                },
            )
        except ValueError as e:
            raise ValueError(f"{self.name}: canonical {self.model} weights: {e}") from None

    def native_loop(
        self, params: Collection, state: VariableDict, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return linen_native_loop(self.train_step, self.module.apply, params, state, tx)
