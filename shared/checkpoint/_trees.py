"""Pytrees as a checkpoint sees them: named leaves, arrays only, typed keys as their data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import leaf_name, named_leaves


def _is_array(x: Any) -> bool:
    return isinstance(x, jax.Array | np.ndarray | np.generic | int | float)


def is_key(x: Any) -> bool:
    """A typed PRNG key array (`jax.random.key`), which orbax cannot write as it is."""
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def savable(tree: Any) -> Any:
    """`tree` as orbax can write it: typed keys as their `key_data`, anything that is not an
    array or a number (an Equinox module's functions, say) left out as `None`."""

    def leaf(x: Any) -> Any:
        if is_key(x):
            return jax.random.key_data(x)
        return x if _is_array(x) else None

    return jax.tree.map(leaf, tree)


def restored_into(template: Any, restored: Any) -> Any:
    """Undo `savable`: `restored` (shaped like `savable(template)`) put back into the
    structure of `template`, key data wrapped as the template's typed keys, the leaves that
    were left out taken from the template."""

    def leaf(t: Any, r: Any) -> Any:
        if r is None:
            return t
        if is_key(t):
            return jax.random.wrap_key_data(jnp.asarray(r), impl=jax.random.key_impl(t))
        return r

    return jax.tree.map(leaf, template, restored, is_leaf=lambda x: x is None)


def abstract(tree: Any, saved: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """The abstract target of a savable tree: shapes and dtypes, no values.

    A Python number in `tree` (a fresh `TrainState`'s `step = 0`) would come back as a
    Python number: it takes the dtype the checkpoint's metadata `saved` gives that leaf
    (the saved run's int32 array), so that nothing is cast on the way back.
    """

    def leaf(path: Any, x: Any) -> Any:
        if isinstance(x, bool | int | float):
            name = leaf_name(path)
            if saved is not None and name in saved:
                return jax.ShapeDtypeStruct((), np.dtype(saved[name]["dtype"]))
            return x
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype)

    return jax.tree_util.tree_map_with_path(leaf, tree)


def describe_leaves(tree: Any) -> dict[str, dict[str, Any]]:
    """Name -> shape and dtype of every leaf: what a checkpoint's metadata records. A Python
    number's dtype is `"int"` or `"float"`: it takes the saved array's own."""

    def dtype(v: Any) -> str:
        if isinstance(v, bool | int | float):
            return "float" if isinstance(v, float) else "int"
        return str(np.asarray(v).dtype)

    return {
        name: {"shape": list(np.shape(v)), "dtype": dtype(v)}
        for name, v in named_leaves(tree).items()
    }
