"""Canonical names from Flax's own trees: Linen variable dicts and NNX `State`s.

Linen keeps its variables in nested dicts, `{"params": {"Dense_0": {"kernel": ...}}}`; NNX
keeps them in a `nnx.State` whose pure-dict form (`nnx.to_pure_dict`) is the same kind of
nested dict, `{"dense1": {"kernel": ...}}` (a `nnx.List` index as an int key). Joining the
keys with `"."` gives the derived names; a `rename` map turns them into canonical ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
from flax import nnx, traverse_util
from flax.core import FrozenDict
from jaxtyping import Array

from shared import canonical_from_paths, tree_from_canonical


def _dotted(tree: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]]]:
    """`flatten_dict` by dotted name (as with `sep="."`), and each name's key tuple.

    Refuses two paths that join to one name (a key containing `"."`), which `sep="."`
    would let overwrite each other silently.
    """
    leaves: dict[str, Any] = {}
    paths: dict[str, tuple[Any, ...]] = {}
    for path, leaf in traverse_util.flatten_dict(tree).items():
        name = ".".join(map(str, path))
        if name in paths:
            raise ValueError(
                f"two Linen variables have the derived name {name!r}: {paths[name]} and {path} "
                "(a key contains '.'); rename the module"
            )
        leaves[name], paths[name] = leaf, path
    return leaves, paths


def linen_canonical(
    variables_or_collection: Mapping[str, Any], rename: Mapping[str, str] | None = None
) -> dict[str, Array]:
    """Linen variables (or one collection of them) -> `{canonical name: array}`.

    The derived names are `flax.traverse_util.flatten_dict(..., sep=".")`'s keys: a
    collection such as `variables["params"]` gives `"Dense_0.kernel"`, the whole variables
    dict gives `"params.Dense_0.kernel"`, `"batch_stats.BatchNorm_0.mean"`.

    **Arguments:**

    - `variables_or_collection`: a (possibly frozen) nested dict, as `Module.init` returns it
      or one of its collections.
    - `rename`: derived name -> canonical name, for the names that differ.

    **Returns:**

    A new dict from canonical name to array (the leaves themselves; traceable).

    **Raises:**

    `ValueError` for a `rename` key that matches no variable, or two variables under one
    canonical name.
    """
    leaves, _ = _dotted(variables_or_collection)
    return canonical_from_paths(leaves, rename)


def linen_from_canonical(
    template: Mapping[str, Any],
    values: Mapping[str, Array],
    rename: Mapping[str, str] | None = None,
) -> Any:
    """The inverse of [`linen_canonical`][]: a nested dict shaped like `template`.

    **Arguments:**

    - `template`: Linen variables or one collection, laid out as the result should be (its
      leaves give the shapes; `jax.eval_shape(module.init, ...)` will do).
    - `values`: canonical name -> array, one per template leaf.
    - `rename`: the same map as for [`linen_canonical`][].

    **Returns:**

    A new nested dict (`flax.traverse_util.unflatten_dict`) of `jnp` arrays; a `FrozenDict`
    if the template is one.

    **Raises:**

    `ValueError` for a bad `rename`, a missing or extra name, or a shape that differs from
    the template's (see `shared.tree_from_canonical`).
    """
    leaves, paths = _dotted(template)
    named = tree_from_canonical(leaves, values, rename)
    out = traverse_util.unflatten_dict({paths[name]: leaf for name, leaf in named.items()})
    return FrozenDict(out) if isinstance(template, FrozenDict) else out


def nnx_canonical(state: nnx.State, rename: Mapping[str, str] | None = None) -> dict[str, Array]:
    """An NNX `State` -> `{canonical name: array}`, named by its attribute paths.

    The derived names are the keys of `nnx.to_pure_dict(state)` joined with `"."`, e.g.
    `"dense1.kernel"`, `"bn.mean"`, `"layers.0.bias"` for an `nnx.List` attribute `layers`.

    **Arguments:**

    - `state`: a `nnx.State`, e.g. the params or batch stats from `nnx.split(model, nnx.Param,
      nnx.BatchStat)`.
    - `rename`: derived name -> canonical name, for the names that differ.

    **Returns:**

    A new dict from canonical name to the variables' values (traceable).

    **Raises:**

    `ValueError` for a `rename` key that matches no variable, or two variables under one
    canonical name.
    """
    return canonical_from_paths(nnx.to_pure_dict(state), rename)


def nnx_from_canonical(
    template: nnx.State, values: Mapping[str, Array], rename: Mapping[str, str] | None = None
) -> nnx.State:
    """The inverse of [`nnx_canonical`][]: a new `State` like `template`, values from `values`.

    The result has the template's variables (types and metadata) holding the new values, and
    merges with the template's graphdef (`nnx.merge(graphdef, result, ...)`).

    **Arguments:**

    - `template`: a `nnx.State` with the wanted layout (concrete, or abstract from
      `nnx.eval_shape`); it is left untouched.
    - `values`: canonical name -> array, one per variable.
    - `rename`: the same map as for [`nnx_canonical`][].

    **Returns:**

    A new `nnx.State`.

    **Raises:**

    `ValueError` for a bad `rename`, a missing or extra name, or a shape that differs from
    the template's (see `shared.tree_from_canonical`).
    """
    pure = tree_from_canonical(nnx.to_pure_dict(template), values, rename)
    out: nnx.State = jax.tree_util.tree_map(lambda leaf: leaf, template)  # new Variables
    nnx.replace_by_pure_dict(out, pure)
    return out
