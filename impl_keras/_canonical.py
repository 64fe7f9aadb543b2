"""Canonical names from Keras's own variables: their paths, less the model's name.

A Keras variable knows its path, `"mlp_bn/dense1/kernel"`: the model's name, the layer's,
the variable's. The derived name of a value is that path without the model's name, joined
with `"."` (`"dense1.kernel"`); a `rename` map turns it into a canonical one (Keras calls
BatchNorm's scale `gamma` and its running mean `moving_mean`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import keras
from jaxtyping import Array

from shared import canonical_from_paths, tree_from_canonical


def derived_name(variable: keras.Variable) -> str:
    """`"mlp_bn/dense1/kernel"` -> `"dense1.kernel"` (a variable of a lone layer: its name)."""
    parts = variable.path.split("/")
    return ".".join(parts[1:] if len(parts) > 1 else parts)


def _named(variables: Sequence[keras.Variable], values: Sequence[Any]) -> dict[str, Any]:
    if len(variables) != len(values):
        raise ValueError(
            f"keras: {len(values)} values for {len(variables)} variables; expected one value "
            "per variable, in the model's variable order"
        )
    return {derived_name(v): value for v, value in zip(variables, values, strict=True)}


def keras_canonical(
    variables: Sequence[keras.Variable],
    values: Sequence[Any],
    rename: Mapping[str, str] | None = None,
) -> dict[str, Array]:
    """Values of Keras variables (as `stateless_call` takes them) -> `{canonical name: array}`.

    **Arguments:**

    - `variables`: `model.trainable_variables` or `model.non_trainable_variables`; only
      their paths are read.
    - `values`: one value per variable, in the same order (traceable).
    - `rename`: derived name -> canonical name, for the names that differ.

    **Raises:**

    `ValueError` when the counts differ, for a `rename` key that matches no variable, or
    for two variables under one canonical name.
    """
    return canonical_from_paths(_named(variables, values), rename)


def keras_from_canonical(
    variables: Sequence[keras.Variable],
    values: Mapping[str, Any],
    rename: Mapping[str, str] | None = None,
) -> list[Array]:
    """The inverse of [`keras_canonical`][]: one value per variable, in their order.

    **Raises:**

    `ValueError` for a bad `rename`, a missing or extra name, or a shape that differs from
    the variable's (see `shared.tree_from_canonical`).
    """
    template = _named(variables, [jnp.zeros(v.shape, v.dtype) for v in variables])
    out = tree_from_canonical(template, values, rename)
    return [out[derived_name(v)] for v in variables]
