"""Canonical names from Haiku's own trees: two-level `{module name: {variable: array}}` dicts.

Haiku names a module by its scope, `"mlp/~/linear_0"`, and keeps its params (and, under
`hk.transform_with_state`, its state) as `{module name: {variable name: array}}`. The derived
name of a leaf is `"<module name>.<variable name>"`, e.g. `"mlp/~/linear_0.w"` or
`"batch_norm/~/mean_ema.average"`; a `rename` map turns it into a canonical one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxtyping import Array

from shared import canonical_from_paths, tree_from_canonical


def haiku_canonical(
    params_or_state: Mapping[str, Mapping[str, Any]], rename: Mapping[str, str] | None = None
) -> dict[str, Array]:
    """Haiku params or state -> `{canonical name: array}`, named `"<module>.<variable>"`.

    **Arguments:**

    - `params_or_state`: Haiku's `{module name: {variable name: array}}`, as `init` returns
      it (e.g. `{"linear": {"w": ..., "b": ...}}` -> `"linear.w"`, `"linear.b"`).
    - `rename`: derived name -> canonical name, for the names that differ.

    **Returns:**

    A new dict from canonical name to array (the leaves themselves; traceable).

    **Raises:**

    `ValueError` for a `rename` key that matches no variable, or two variables under one
    canonical name.
    """
    return canonical_from_paths(params_or_state, rename)


def haiku_from_canonical(
    template: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, Array],
    rename: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Array]]:
    """The inverse of [`haiku_canonical`][]: Haiku's two-level dict shaped like `template`.

    **Arguments:**

    - `template`: params or state with the wanted layout (its leaves give the shapes;
      `jax.eval_shape(transformed.init, ...)` will do).
    - `values`: canonical name -> array, one per template leaf.
    - `rename`: the same map as for [`haiku_canonical`][].

    **Returns:**

    A new `{module name: {variable name: jnp array}}` dict, ready for `apply`.

    **Raises:**

    `ValueError` for a bad `rename`, a missing or extra name, or a shape that differs from
    the template's (see `shared.tree_from_canonical`).
    """
    out = tree_from_canonical(template, values, rename)
    return {module: dict(variables) for module, variables in out.items()}
