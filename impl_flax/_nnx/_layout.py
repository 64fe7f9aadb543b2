"""NNX's native checkpoint as `checkpoint convert` reads and writes it: two `nnx.State`s."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def _name(path: tuple[Any, ...]) -> str:
    """A leaf's dotted name without a Variable's own `value`: `0.mu.dense1.kernel`."""
    parts = []
    for k in path:
        for attribute in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
            if hasattr(k, attribute):
                parts.append(str(getattr(k, attribute)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts).removesuffix(".value")


def _named(tree: Any) -> dict[str, Any]:
    return {_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


class NNXLayout:
    """`{"model": nnx.state(model), "optimizer": nnx.state(optimizer)}`: every Variable of
    the model (Params, BatchStats, the RNG streams' keys and counts), and the optimizer's
    `step` (uint32) and `opt_state`, optax's state with each tuple as an int-keyed dict and
    each array an `OptVariable`."""

    description = (
        "Flax NNX's {model, optimizer} (nnx.state of the model, rngs included; "
        "nnx.Optimizer's step uint32 and opt_state as an int-keyed dict)"
    )

    def mirrored(self, tree: dict[str, Any]) -> Any:
        """What optax's state mirrors: the model's `nnx.Param`s (`nnx.Optimizer(...,
        wrt=nnx.Param)`), as `nnx.state(model, nnx.Param)` gives them."""
        return nnx.filter_state(tree["model"], nnx.Param)

    def optimizer(
        self, tree: dict[str, Any], tx: optax.GradientTransformation
    ) -> tuple[optax.OptState, Any]:
        """Optax's own state (tuples, NamedTuples) over the params, filled from the
        optimizer's int-keyed dict by path; and its step."""
        pure = nnx.to_pure_dict(tree["optimizer"])
        saved = _named(pure.get("opt_state", {}))  # sgd: optax keeps nothing
        template = tx.init(self.mirrored(tree))

        def leaf(path: tuple[Any, ...], x: Any) -> Any:
            name = _name(path)
            if name not in saved:
                raise KeyError(name)
            return jnp.asarray(saved[name], dtype=jnp.asarray(x).dtype)

        return jax.tree_util.tree_map_with_path(leaf, template), pure["step"]

    def with_optimizer(
        self,
        tree: dict[str, Any],
        tx: optax.GradientTransformation,
        opt_state: optax.OptState,
        step: int,
    ) -> dict[str, Any]:
        """`tree` whose optimizer holds `opt_state` (optax's form, over the params) and the
        step as NNX counts it (uint32)."""
        values = _named(opt_state)
        pure = nnx.to_pure_dict(tree["optimizer"])
        dtype = jnp.asarray(pure["step"]).dtype

        def leaf(path: tuple[Any, ...], x: Any) -> Any:
            name = _name(path)
            if name == "step":
                return jnp.asarray(step, dtype)
            key = name.removeprefix("opt_state.")
            if key not in values:
                raise KeyError(key)
            return jnp.asarray(values[key], dtype=jnp.asarray(x).dtype)

        new = jax.tree_util.tree_map_with_path(leaf, pure)
        optimizer = jax.tree_util.tree_map(lambda v: v, tree["optimizer"])  # new Variables
        nnx.replace_by_pure_dict(optimizer, new)
        return {**tree, "optimizer": optimizer}
