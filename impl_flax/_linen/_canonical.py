"""Canonical names from Linen's own trees: nested dicts of variables.

Linen keeps its variables in nested dicts, `{"params": {"Dense_0": {"kernel": ...}}}`.
Joining the keys with `"."` gives the derived names; a `rename` map turns them into
canonical ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flax import traverse_util
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
