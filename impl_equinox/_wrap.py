"""An Equinox module behind the harness protocol, with no adapter class to write.

The module's inexact arrays are the params and its `eqx.nn.State` (if it has one) the
state; `eqx.nn.inference_mode` is the train/eval switch. Equinox layers take one example,
so the module is called under `jax.vmap` over the batch (with the state shared, and an
`axis_name` for `eqx.nn.BatchNorm`). Equinox's layouts are turned into the other
frameworks' in the canonical view: a `Linear`'s (out, in) weight into (in, out), a `Conv`'s
(out, in, *kernel) weight into (*kernel, in, out) and its (out, 1, ...) bias into (out,).
"""

from __future__ import annotations

from typing import Any, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

from shared import RUNNING_AVERAGE, Canonical, NativeLoop, NativeTraining, canonical_from_paths

from ._canonical import (
    equinox_canonical,
    equinox_from_canonical,
    equinox_state_canonical,
    equinox_state_from_canonical,
)
from ._native import equinox_native_loop

_LAYOUTS = (eqx.nn.Linear, eqx.nn.Conv)


class _Layer:
    """A marker leaf: the Linear or Conv found at a path."""

    def __init__(self, node: Any):
        self.node = node


def _layouts(model: Any) -> dict[str, tuple[str, int]]:
    """Canonical name -> (kind, rank) of every Linear and Conv weight and Conv bias."""
    marked = jax.tree.map(
        lambda n: _Layer(n) if isinstance(n, _LAYOUTS) else None,
        model,
        is_leaf=lambda n: isinstance(n, _LAYOUTS),
    )
    out: dict[str, tuple[str, int]] = {}
    for path, layer in canonical_from_paths(marked).items():
        node, prefix = cast(_Layer, layer).node, f"{path}." if path else ""
        kind = "linear" if isinstance(node, eqx.nn.Linear) else "conv"
        out[f"{prefix}weight"] = (kind, node.weight.ndim)
        if kind == "conv" and node.bias is not None:
            out[f"{prefix}bias"] = ("conv_bias", node.bias.ndim)
    return out


def _to_common(kind: str, a: Array) -> Array:
    if kind == "linear" and a.ndim == 2:
        return a.T
    if kind == "conv":
        return jnp.transpose(a, (*range(2, a.ndim), 1, 0))
    if kind == "conv_bias":
        return jnp.reshape(a, (a.shape[0],))
    return a


def _from_common(kind: str, rank: int, a: Array) -> Array:
    if kind == "linear" and rank == 2:
        return a.T
    if kind == "conv":
        return jnp.transpose(a, (a.ndim - 1, a.ndim - 2, *range(a.ndim - 2)))
    if kind == "conv_bias":
        return jnp.reshape(a, (a.shape[0],) + (1,) * (rank - 1))
    return a


class WrappedEquinox(NativeTraining):
    """An Equinox module (and its state) behind the protocol (see `wrap`)."""

    wrapped_by_rosetta = True
    model = ""
    name = "equinox"

    def __init__(self, module: Any, state: Any, *, axis_name: str, key_arg: str | None):
        self.params, self.static = eqx.partition(module, eqx.is_inexact_array)
        self.module, self.state = module, state
        self.axis_name, self.key_arg = axis_name, key_arg
        self.layouts = _layouts(module)
        names = {} if state is None else equinox_state_canonical(module, state)
        self.meanings = {n: RUNNING_AVERAGE for n in names if n.rsplit(".", 1)[-1] in ("0", "1")}

    def init(self, key: jax.Array, x: Any) -> tuple[Any, Any]:
        """The module's own values (an Equinox module is built with them)."""
        return self.params, self.state

    def apply(self, params: Any, state: Any, x: Any, *, train: bool, key: Any = None) -> Any:
        model = eqx.nn.inference_mode(eqx.combine(params, self.static), value=not train)
        return self._batched(model, state, x, key)

    def _batched(self, model: Any, state: Any, x: Any, key: Any) -> Any:
        """`model` on a batch: one example per `jax.vmap` lane, the state shared."""
        extra = {} if self.key_arg is None or key is None else {self.key_arg: key}
        if state is None:
            return jax.vmap(lambda x: model(x, **extra))(x), None

        def one(x: Any, s: Any) -> Any:
            return model(x, s, **extra)

        batched = jax.vmap(
            one,
            axis_name=self.axis_name,
            in_axes=(0, None),
            out_axes=(0, None),
        )
        return batched(x, state)

    def native_loop(self, params: Any, state: Any, tx: optax.GradientTransformation) -> NativeLoop:
        """Equinox's loop: the module, its state and optax's state through an
        `eqx.filter_jit` step, the gradient by `eqx.filter_value_and_grad`."""
        loss, inputs = self.training()

        @eqx.filter_jit
        def train_step(
            model: Any, state: Any, opt_state: optax.OptState, batch: Any, tx: Any, key: Any = None
        ) -> tuple[Any, Any, optax.OptState, Array]:
            def loss_fn(model: Any) -> tuple[Array, Any]:
                out, new_state = self._batched(model, state, inputs(batch), key)
                return loss(out, batch), new_state

            (value, state), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model)
            updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            return eqx.apply_updates(model, updates), state, opt_state, value

        model = eqx.nn.inference_mode(eqx.combine(params, self.static), value=False)
        return equinox_native_loop(train_step, model, state, tx)

    def to_canonical(self, params: Any, state: Any) -> tuple[Canonical, Canonical]:
        model = eqx.combine(params, self.static)
        p = {
            k: _to_common(self.layouts[k][0], v) if k in self.layouts else v
            for k, v in equinox_canonical(model).items()
        }
        return p, {} if state is None else equinox_state_canonical(model, state)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[Any, Any]:
        native = {
            k: _from_common(*self.layouts[k], v) if k in self.layouts else v
            for k, v in params.items()
        }
        model = equinox_from_canonical(self.module, native)
        new_state = (
            None if self.state is None else equinox_state_from_canonical(model, self.state, state)
        )
        return eqx.filter(model, eqx.is_inexact_array), new_state


def wrap(
    obj: Any, *, label: str = "model", axis_name: str = "batch", key_arg: str | None = None
) -> WrappedEquinox:
    """An Equinox module, or `(module, eqx.nn.State)`, behind the protocol.

    **Arguments:**

    - `obj`: the module, called on one example as `model(x)`, or `model(x, state)` for a
      stateful one (as `eqx.nn.make_with_state` builds it).
    - `axis_name`: the batch axis's name under `jax.vmap` (what `eqx.nn.BatchNorm` was
      given).
    - `key_arg`: the call's key argument (`"key"` for `eqx.nn.Dropout`), or `None`.

    **Raises:** `TypeError` naming `label` for anything but an `eqx.Module` (and a State).
    """
    module, state = obj if type(obj) is tuple else (obj, None)
    if not isinstance(module, eqx.Module) or (
        state is not None and not isinstance(state, eqx.nn.State)
    ):
        raise TypeError(
            f"{label} (equinox): got a {type(obj).__qualname__}; expected an eqx.Module or "
            "(eqx.Module, eqx.nn.State)"
        )
    return WrappedEquinox(module, state, axis_name=axis_name, key_arg=key_arg)
