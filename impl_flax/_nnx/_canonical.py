"""Canonical names from NNX's own trees: `nnx.State`s.

NNX keeps its variables in a `nnx.State` whose pure-dict form (`nnx.to_pure_dict`) is a
nested dict, `{"dense1": {"kernel": ...}}` (a `nnx.List` index as an int key). Joining the
keys with `"."` gives the derived names; a `rename` map turns them into canonical ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
from flax import nnx
from jaxtyping import Array

from shared import canonical_from_paths, tree_from_canonical


def nnx_canonical(
    state: nnx.State[Any, Any], rename: Mapping[str, str] | None = None
) -> dict[str, Array]:
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
    template: nnx.State[Any, Any],
    values: Mapping[str, Array],
    rename: Mapping[str, str] | None = None,
) -> nnx.State[Any, Any]:
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
    out: nnx.State[Any, Any] = jax.tree_util.tree_map(lambda leaf: leaf, template)  # new Variables
    nnx.replace_by_pure_dict(out, pure)
    return out
