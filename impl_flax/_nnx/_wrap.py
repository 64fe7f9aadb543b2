"""An NNX model behind the harness protocol, with no adapter class to write.

The model is split once into its graphdef, its `nnx.Param`s, its `nnx.BatchStat`s and the
rest (RNG streams, counters), and merged per call; `model.train()` / `model.eval()` is the
switch. The rest travels as state but is not compared: an RNG stream's key and counter mean
nothing to another framework.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from shared import RUNNING_AVERAGE, Canonical, NativeLoop, NativeTraining

from ._canonical import nnx_canonical, nnx_from_canonical
from ._native import nnx_native_loop

STATS = ("mean", "var")


class WrappedNNX(NativeTraining):
    """An `nnx.Module` behind the protocol (see `wrap`)."""

    wrapped_by_rosetta = True
    model = ""
    name = "flax_nnx"

    def __init__(self, module: nnx.Module, *, key_arg: str | None):
        graphdef, params, stats, rest = _split(module)
        self.graphdef = graphdef
        # Copies: the caller keeps its own model.
        self.values = _copy(params), (_copy(stats), _copy(rest))
        self.key_arg = key_arg
        self.meanings = {
            name: RUNNING_AVERAGE
            for name in nnx_canonical(stats)
            if name.rsplit(".", 1)[-1] in STATS
        }

    def init(self, key: jax.Array, x: Any) -> tuple[Any, Any]:
        """The model's own values (an NNX model is built with them)."""
        return self.values

    def apply(self, params: Any, state: Any, x: Any, *, train: bool, key: Any = None) -> Any:
        stats, rest = state
        model = nnx.merge(self.graphdef, params, stats, rest, copy=True)
        model.train() if train else model.eval()
        y = model(x) if self.key_arg is None else model(x, **{self.key_arg: key})
        _, _, new_stats, new_rest = _split(model)
        return y, (new_stats, new_rest)

    def native_loop(self, params: Any, state: Any, tx: optax.GradientTransformation) -> NativeLoop:
        """NNX's loop: the merged model and an `nnx.Optimizer`, updated in place by an
        `nnx.jit` step."""
        loss, inputs = self.training()
        key_arg = self.key_arg
        model = nnx.merge(self.graphdef, params, *state, copy=True)

        @nnx.jit
        def train_step(
            model: Any, optimizer: nnx.Optimizer[Any], batch: Any, key: Any = None
        ) -> Any:
            def loss_fn(model: Any) -> Any:
                x = inputs(batch)
                return loss(model(x) if key_arg is None else model(x, **{key_arg: key}), batch)

            value, grads = nnx.value_and_grad(loss_fn)(model)
            optimizer.update(model, grads)
            return value

        def read() -> tuple[Any, Any]:
            _, params, stats, rest = _split(model)
            return params, (stats, rest)

        return nnx_native_loop(train_step, model, tx)._replace(read=read)

    def to_canonical(self, params: Any, state: Any) -> tuple[Canonical, Canonical]:
        return nnx_canonical(params), nnx_canonical(state[0])

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[Any, Any]:
        p, (s, rest) = self.values
        return nnx_from_canonical(p, params), (nnx_from_canonical(s, state), rest)


def wrap(obj: Any, *, label: str = "model", key_arg: str | None = None) -> WrappedNNX:
    """An `nnx.Module` behind the protocol: called as `model(x)`, or `model(x, **{key_arg:
    key})` with the step's key when `key_arg` is given (a model whose dropout takes a key
    per call; a model with its own `nnx.Rngs` stream needs none).

    **Raises:** `TypeError` naming `label` for anything but an `nnx.Module`.
    """
    if not isinstance(obj, nnx.Module):
        raise TypeError(
            f"{label} (flax_nnx): got a {type(obj).__qualname__}; expected an nnx.Module"
        )
    return WrappedNNX(obj, key_arg=key_arg)


def _split(module: nnx.Module) -> tuple[Any, Any, Any, Any]:
    """The graph, the params, the batch statistics and the rest (its RNG streams, ...)."""
    return cast(tuple[Any, Any, Any, Any], nnx.split(module, nnx.Param, nnx.BatchStat, ...))


def _copy(tree: Any) -> Any:
    """A copy of every array in `tree`."""
    return jax.tree.map(jnp.copy, tree)
