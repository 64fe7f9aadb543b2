"""A Haiku transformed function behind the harness protocol, with no adapter class to write.

`hk.transform` gives `init(key, x)` and `apply(params, key, x)`; `hk.transform_with_state`
adds the state (`init` returns it, `apply` takes and returns it). The train/eval switch, if
the function has one, is one of its arguments (`train_arg`, e.g. `"is_training"`).
"""

from __future__ import annotations

import inspect
from typing import Any, cast

import haiku as hk
import jax
import optax
from jaxtyping import Array

from shared import Canonical, NativeLoop, NativeTraining

from ._canonical import haiku_canonical, haiku_from_canonical
from ._native import haiku_native_loop

EMA = "a zero-debiased EMA (hidden, average = hidden / (1 - decay^counter), counter)"
"""What Haiku's `ExponentialMovingAverage` keeps, BatchNorm's statistics among them."""


class WrappedHaiku(NativeTraining):
    """`hk.Transformed` or `hk.TransformedWithState` behind the protocol (see `wrap`)."""

    wrapped_by_rosetta = True
    model = ""

    def __init__(self, transformed: Any, *, train_arg: str | None, name: str = "haiku"):
        self.transformed = transformed
        self.stateful = isinstance(transformed, hk.TransformedWithState)
        self.train_arg = train_arg
        self.name = name
        # hk.without_apply_rng drops apply's key argument.
        arguments = list(inspect.signature(transformed.apply).parameters)
        self.takes_key = len(arguments) > (2 if self.stateful else 1) and (
            arguments[1 if not self.stateful else 2] in ("rng", "rngs", "key")
        )
        self.templates: tuple[Any, Any] | None = None
        self.meanings: dict[str, str] = {}

    def _switch(self, train: bool) -> dict[str, bool]:
        return {} if self.train_arg is None else {self.train_arg: train}

    def init(self, key: jax.Array, x: Any) -> tuple[hk.Params, hk.State]:
        if self.stateful:
            params, state = self.transformed.init(key, x, **self._switch(True))
        else:
            params, state = self.transformed.init(key, x, **self._switch(True)), {}
        self.templates = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (params, state)
        )
        self.meanings = {
            name: EMA
            for name in haiku_canonical(state)
            if name.rsplit(".", 1)[-1] in ("hidden", "average", "counter")
        }
        return params, state

    def apply(
        self, params: hk.Params, state: hk.State, x: Any, *, train: bool, key: Any = None
    ) -> tuple[Array, hk.State]:
        keyed = (key,) if self.takes_key else ()
        switch = self._switch(train)
        if self.stateful:
            out, new_state = self.transformed.apply(params, state, *keyed, x, **switch)
            return cast(Array, out), new_state
        return cast(Array, self.transformed.apply(params, *keyed, x, **switch)), state

    def native_loop(
        self, params: hk.Params, state: hk.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """Haiku's loop: params, state and optax's state through a `jax.jit` step."""
        loss, inputs = self.training()

        @jax.jit
        def train_step(
            params: hk.Params,
            state: hk.State,
            opt_state: optax.OptState,
            batch: Any,
            key: Any = None,
        ) -> tuple[hk.Params, hk.State, optax.OptState, Array]:
            def loss_fn(params: hk.Params) -> tuple[Array, hk.State]:
                out, new_state = self.apply(params, state, inputs(batch), train=True, key=key)
                return loss(out, batch), new_state

            (value, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), state, opt_state, value

        return haiku_native_loop(train_step, params, state, tx)

    def to_canonical(self, params: hk.Params, state: hk.State) -> tuple[Canonical, Canonical]:
        return haiku_canonical(params), haiku_canonical(state)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[hk.Params, hk.State]:
        if self.templates is None:
            raise ValueError(f"{self.name}: from_canonical before init; call init first")
        return (
            haiku_from_canonical(self.templates[0], params),
            haiku_from_canonical(self.templates[1], state),
        )


def wrap(obj: Any, *, label: str = "model", train_arg: str | None = None) -> WrappedHaiku:
    """A Haiku `hk.transform` or `hk.transform_with_state` result behind the protocol.

    **Arguments:**

    - `obj`: the transformed function, called as `f(x)` or, with `train_arg`,
      `f(x, **{train_arg: train})`.
    - `label`: how errors name it.
    - `train_arg`: the function's train/eval switch (e.g. `"is_training"`), or `None`.

    **Raises:** `TypeError` naming `label` for anything but a transformed function.
    """
    if not isinstance(obj, hk.Transformed | hk.TransformedWithState):
        raise TypeError(
            f"{label} (haiku): got a {type(obj).__qualname__}; expected the result of "
            "hk.transform or hk.transform_with_state (call it on the function, not a module)"
        )
    return WrappedHaiku(obj, train_arg=train_arg)
