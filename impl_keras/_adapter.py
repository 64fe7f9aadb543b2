"""The adapter from a built Keras layer to the harness: `layer.stateless_call`.

Keras keeps values inside `keras.Variable` objects. For a pure function of the values, the
harness uses the layer's own functional entry point: `stateless_call(trainable_values,
non_trainable_values, x, training=...)` returns the outputs and the new non-trainable values.
The params are the list of trainable values and the state the list of non-trainable ones,
both in the layer's variable order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import keras
from jaxtyping import Array

from shared import Canonical, LayerCall, LayerTrace

from ._canonical import keras_canonical, keras_from_canonical

LayerT = TypeVar("LayerT", bound=keras.Layer)


class KerasAdapter:
    """A Keras layer or model behind the harness protocol.

    Subclasses set `name`, `model` and the rename maps, and define `make` (a new, built
    layer for the config) and `check` (the model's input check).
    """

    name = "keras"
    model = ""
    params_rename: Mapping[str, str] = {}
    state_rename: Mapping[str, str] = {}

    def __init__(self, config: Any):
        self.config = config
        self.layer = self.make()  # only its structure is used: values come in as arguments

    def make(self) -> keras.Layer:
        """A new layer for this config, built (its variables created)."""
        raise NotImplementedError

    def check(self, x: Any) -> None:
        """Check the input, naming `self.name` in the error."""

    def init(self, key: jax.Array, x: Any) -> tuple[list[Array], list[Array]]:
        """A new layer's values. Keras draws its initial weights from its own global seed
        (`keras.utils.set_random_seed`), not from `key`; the runs load the canonical init."""
        del key
        self.check(x)
        layer = self.make()
        # --8<-- [start:keras-split]
        params = [v.value for v in layer.trainable_variables]  # Variable.value: the array
        state = [v.value for v in layer.non_trainable_variables]
        # --8<-- [end:keras-split]
        return params, state

    def apply(
        self,
        params: list[Array],
        state: list[Array],
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, list[Array]]:
        self.check(x)
        if not train:
            # --8<-- [start:keras-eval]
            y, _ = self.layer.stateless_call(params, state, x, training=False)  # no update
            # --8<-- [end:keras-eval]
            return y, state
        # --8<-- [start:keras-apply-update]
        # Pure: values in, outputs and new non-trainable values out; the layer's variables
        # are not touched. `training` must be given: stateless_call skips call()'s default.
        y, state = self.layer.stateless_call(params, state, x, training=True)
        # --8<-- [end:keras-apply-update]
        return y, state

    def layer_trace(
        self,
        params: list[Array],
        state: list[Array],
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> LayerTrace:
        """`stateless_call`, every sublayer's `call` recorded. Keras 3 has no call hook, and
        a subclassed model has no functional graph to cut outputs from, so each sublayer's
        `call` is wrapped on the instance for the duration of this one trace."""
        calls: dict[str, LayerCall] = {}
        sublayers = self.layer._flatten_layers(include_self=False)  # every nested layer
        # --8<-- [start:keras-layer-trace]
        for sub in sublayers:
            object.__setattr__(sub, "call", _recording(sub, calls))  # found before the class's
        try:
            y, _ = self.layer.stateless_call(params, state, x, training=train)
        finally:
            for sub in sublayers:
                object.__delattr__(sub, "call")
        # --8<-- [end:keras-layer-trace]
        calls[""] = LayerCall(x, y)
        return calls

    def to_canonical(self, params: list[Array], state: list[Array]) -> tuple[Canonical, Canonical]:
        return (
            keras_canonical(self.layer.trainable_variables, params, self.params_rename),
            keras_canonical(self.layer.non_trainable_variables, state, self.state_rename),
        )

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[list[Array], list[Array]]:
        try:
            return (
                keras_from_canonical(self.layer.trainable_variables, params, self.params_rename),
                keras_from_canonical(self.layer.non_trainable_variables, state, self.state_rename),
            )
        except ValueError as e:
            raise ValueError(f"{self.name}: canonical {self.model} weights: {e}") from None


def _recording(layer: keras.Layer, calls: dict[str, LayerCall]) -> Any:
    """`layer.call`, its first argument and its output recorded under its canonical path
    (`"mlp_bn/block1/conv1"` -> `"block1.conv1"`: the model's name dropped)."""
    call = type(layer).call.__get__(layer)
    path = ".".join(layer.path.split("/")[1:])

    def recorded(x: Any, *args: Any, **kwargs: Any) -> Any:
        out = call(x, *args, **kwargs)
        calls[path] = LayerCall(x, out)
        return out

    return recorded


def built(layer: LayerT, features: int) -> LayerT:
    """`layer`, its variables created by one eval call on zeros (a subclassed model builds
    its sublayers when first called)."""
    layer(keras.ops.zeros((1, features)), training=False)
    return layer


def values(variables: list[keras.Variable]) -> list[Array]:
    """The current values of `variables`, in order (what `stateless_call` takes)."""
    return [v.value for v in variables]  # Variable.value: the array itself


def assign(variables: list[keras.Variable], new: list[Any]) -> None:
    """Write copies of `new` into `variables`, in order."""
    # --8<-- [start:keras-merge]
    for variable, value in zip(variables, new, strict=True):
        # assign() keeps the array itself, and Keras's jitted train step donates the
        # variables' buffers: without a copy, the caller's arrays are deleted by the step.
        variable.assign(jnp.copy(value))  # checks the shape; casts to the variable's dtype
    # --8<-- [end:keras-merge]
