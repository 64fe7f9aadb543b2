"""A Linen module behind the harness protocol, with no adapter class to write.

`module.init` gives the variables, `{"params": ..., "batch_stats": ..., ...}`: the params
are the `"params"` collection and the state every other one, which `module.apply` updates
when it is `mutable`. The train/eval switch is one of the module's call arguments
(`train_arg`, e.g. `"train"`), and dropout draws from the `"dropout"` stream, given the
step's key.
"""

from __future__ import annotations

from typing import Any, cast

import flax.linen as nn
import jax
import optax
from flax.training import train_state
from jaxtyping import Array

from shared import (
    RUNNING_AVERAGE,
    Canonical,
    NativeLoop,
    NativeTraining,
    canonical_from_paths,
    tree_from_canonical,
)

STATS = ("mean", "var")


class TrainState(train_state.TrainState):
    """Linen's usual train state, plus every mutable collection the module keeps
    (`batch_stats`, ...), under one field since a user's module may keep any."""

    collections: Any


class WrappedLinen(NativeTraining):
    """A Linen `nn.Module` behind the protocol (see `wrap`)."""

    wrapped_by_rosetta = True
    model = ""
    name = "flax_linen"

    def __init__(
        self,
        module: nn.Module,
        *,
        train_arg: str | None,
        eval_arg: str | None,
        key_arg: str | None,
    ):
        self.module = module
        self.train_arg, self.eval_arg, self.key_arg = train_arg, eval_arg, key_arg
        self.templates: tuple[Any, Any] | None = None
        self.meanings: dict[str, str] = {}

    def _switch(self, train: bool, key: Any = None) -> dict[str, Any]:
        switch: dict[str, Any] = {} if self.train_arg is None else {self.train_arg: train}
        if self.key_arg is not None:
            switch[self.key_arg] = key
        return switch if self.eval_arg is None else {**switch, self.eval_arg: not train}

    def init(self, key: jax.Array, x: Any) -> tuple[Any, Any]:
        rngs = {"params": key, "dropout": key}
        variables = self.module.init(rngs, x, **self._switch(True, key))
        params = variables.get("params", {})
        state = {k: v for k, v in variables.items() if k != "params"}
        self.templates = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (params, state)
        )
        self.meanings = {
            n: RUNNING_AVERAGE
            for n in canonical_from_paths(state)
            if n.startswith("batch_stats.") and n.rsplit(".", 1)[-1] in STATS
        }
        return params, state

    def apply(
        self, params: Any, state: Any, x: Any, *, train: bool, key: Any = None
    ) -> tuple[Array, Any]:
        rngs = None if key is None or self.key_arg else {"dropout": key}
        variables = {"params": params, **state}
        if train and state:
            y, new_state = self.module.apply(
                variables, x, mutable=list(state), rngs=rngs, **self._switch(True, key)
            )
            return y, dict(new_state)
        y = self.module.apply(variables, x, rngs=rngs, **self._switch(train, key))
        return cast(Array, y), state

    def native_loop(self, params: Any, state: Any, tx: optax.GradientTransformation) -> NativeLoop:
        """Linen's loop: a `TrainState` through a `jax.jit` step, `apply_gradients` for the
        update and the mutable collections carried beside the params."""
        loss, inputs = self.training()
        ts = TrainState.create(apply_fn=self.module.apply, params=params, tx=tx, collections=state)

        @jax.jit
        def train_step(ts: TrainState, batch: Any, key: Any = None) -> tuple[TrainState, Array]:
            def loss_fn(params: Any) -> tuple[Array, Any]:
                out, new = self.apply(params, ts.collections, inputs(batch), train=True, key=key)
                return loss(out, batch), new

            (value, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(ts.params)
            return ts.apply_gradients(grads=grads, collections=new), value

        def step(batch: Any, *key: Array) -> Array:  # a random model's step takes its key
            nonlocal ts
            ts, value = train_step(ts, batch, *key)
            return cast(Array, value)

        def restore(restored: TrainState) -> None:  # restored against a fresh TrainState
            nonlocal ts
            ts = restored

        return NativeLoop(step, lambda: (ts.params, ts.collections), lambda: ts, restore)

    def to_canonical(self, params: Any, state: Any) -> tuple[Canonical, Canonical]:
        return canonical_from_paths(params), canonical_from_paths(state)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[Any, Any]:
        if self.templates is None:
            raise ValueError(f"{self.name}: from_canonical before init; call init first")
        return (
            tree_from_canonical(self.templates[0], params),
            tree_from_canonical(self.templates[1], state),
        )


def wrap(
    obj: Any,
    *,
    label: str = "model",
    train_arg: str | None = None,
    eval_arg: str | None = None,
    key_arg: str | None = None,
) -> WrappedLinen:
    """A Linen module behind the protocol, called as `module.apply(variables, x, ...)`.

    **Arguments:**

    - `train_arg`: the call argument that is `True` in training (e.g. `"train"`), or
      `eval_arg`: the one that is `True` in eval (e.g. `"use_running_average"`); neither
      for a module without a switch.
    - `key_arg`: the call argument that takes the step's key (a module that hands it to
      `nn.Dropout(...)(x, rng=key)`); without it the key is the `"dropout"` stream.

    **Raises:** `TypeError` naming `label` for anything but an `nn.Module`.
    """
    if not isinstance(obj, nn.Module):
        raise TypeError(
            f"{label} (flax_linen): got a {type(obj).__qualname__}; expected an nn.Module"
        )
    return WrappedLinen(obj, train_arg=train_arg, eval_arg=eval_arg, key_arg=key_arg)
