"""Canonical names from Equinox's own trees: a module's attribute paths and its `StateIndex`es.

An Equinox model is a pytree of modules, so every array has an attribute path,
`dense1.weight`, `layers.0.bias`: that is its derived name. Its params are its inexact
arrays (`eqx.is_inexact_array`); its state lives in an `eqx.nn.State`, one value per
`eqx.nn.StateIndex` in the model, named by the index's own attribute path
(`bn.ema_state_index.0` for the first element of a tuple-valued index).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import equinox as eqx
import jax
from jaxtyping import Array, PyTree

from shared import canonical_from_paths, tree_from_canonical

_Model = TypeVar("_Model")


def _is_index(node: Any) -> bool:
    return isinstance(node, eqx.nn.StateIndex)


def _params(module: PyTree) -> PyTree:
    """The module's inexact arrays, everything else (`StateIndex`es included) `None`."""
    # A StateIndex is treated as one non-array leaf: the initial state it may still carry
    # (a model built without `make_with_state`) is state, not params.
    return eqx.filter(module, eqx.is_inexact_array, is_leaf=_is_index)


def equinox_canonical(module: PyTree, rename: Mapping[str, str] | None = None) -> dict[str, Array]:
    """An Equinox module's inexact arrays -> `{canonical name: array}`, by attribute path.

    E.g. a model with attributes `dense1: eqx.nn.Linear` and `bn: eqx.nn.BatchNorm` gives
    `"dense1.weight"`, `"dense1.bias"`, `"bn.weight"`, `"bn.bias"`; a list attribute
    `layers` gives `"layers.0.weight"`. `None` fields, non-arrays, integer arrays and
    `eqx.nn.StateIndex`es are left out.

    **Arguments:**

    - `module`: an Equinox module (any pytree works), or its params as
      `eqx.filter(module, eqx.is_inexact_array)` gives them.
    - `rename`: derived name -> canonical name, for the names that differ.

    **Returns:**

    A new dict from canonical name to array (the leaves themselves; traceable).

    **Raises:**

    `ValueError` for a `rename` key that matches no array, or two arrays under one
    canonical name.
    """
    return canonical_from_paths(_params(module), rename)


def equinox_from_canonical(
    template_module: _Model, values: Mapping[str, Array], rename: Mapping[str, str] | None = None
) -> _Model:
    """The inverse of [`equinox_canonical`][]: `template_module` with the arrays from `values`.

    **Arguments:**

    - `template_module`: the module whose static parts, non-array leaves and
      `StateIndex`es the result keeps; it is left untouched.
    - `values`: canonical name -> array, one per inexact array of the template.
    - `rename`: the same map as for [`equinox_canonical`][].

    **Returns:**

    A new module (`eqx.combine` of the new arrays and the template). Apply
    `eqx.filter(result, eqx.is_inexact_array)` for the params alone.

    **Raises:**

    `ValueError` for a bad `rename`, a missing or extra name, or a shape that differs from
    the template's (see `shared.tree_from_canonical`).
    """
    arrays = tree_from_canonical(_params(template_module), values, rename)
    out: _Model = eqx.combine(arrays, template_module, is_leaf=_is_index)
    return out


def _state_tree(model: PyTree, state: eqx.nn.State) -> PyTree:
    """`model` with each `StateIndex` replaced by its value in `state`, all else `None`."""
    return jax.tree_util.tree_map(
        lambda node: state.get(node) if _is_index(node) else None, model, is_leaf=_is_index
    )


def equinox_state_canonical(
    model: PyTree, state: eqx.nn.State, rename: Mapping[str, str] | None = None
) -> dict[str, Array]:
    """An `eqx.nn.State` -> `{canonical name: array}`, named by the model's `StateIndex`es.

    Each `eqx.nn.StateIndex` in `model` gives one entry per leaf of `state.get(index)`,
    named by the index's attribute path, plus the path inside a pytree value: an index
    `self.count_index` holding an array gives `"count_index"`; `eqx.nn.BatchNorm`'s
    `(mean, var)` tuple at `bn.ema_state_index` gives `"bn.ema_state_index.0"` and
    `"bn.ema_state_index.1"`. Every leaf is included, integer and boolean ones too (e.g.
    `"bn.ema_first_time_index"`).

    **Arguments:**

    - `model`: the model the state belongs to (as `eqx.nn.make_with_state` returns it).
    - `state`: its `eqx.nn.State`; it is only read.
    - `rename`: derived name -> canonical name, for the names that differ.

    **Returns:**

    A new dict from canonical name to array (traceable).

    **Raises:**

    `ValueError` for a `rename` key that matches no state leaf, or two leaves under one
    canonical name.
    """
    return canonical_from_paths(_state_tree(model, state), rename)


def equinox_state_from_canonical(
    model: PyTree,
    state: eqx.nn.State,
    values: Mapping[str, Array],
    rename: Mapping[str, str] | None = None,
) -> eqx.nn.State:
    """The inverse of [`equinox_state_canonical`][]: a new `State` holding `values`.

    **Arguments:**

    - `model`: the model the state belongs to.
    - `state`: a state of that model, the template (its values give the shapes); it is left
      untouched and valid.
    - `values`: canonical name -> array, one per state leaf.
    - `rename`: the same map as for [`equinox_state_canonical`][].

    **Returns:**

    A new `eqx.nn.State` holding the new value of each `StateIndex` in `model`.

    **Raises:**

    `ValueError` for a bad `rename`, a missing or extra name, or a shape that differs from
    the template's (see `shared.tree_from_canonical`).
    """
    # Not `state.set(index, value)`: it refuses a value whose weak type differs from the
    # stored one's (a counter updated as `count + 1` is stored weakly typed, a value that has
    # been through NumPy is not), and it invalidates the state it is called on. Instead,
    # `substate`/`update`: the substate's values, one per marker in the model's order, are
    # swapped for the new ones through its pytree structure.
    indices, treedef = jax.tree_util.tree_flatten(model, is_leaf=_is_index)
    new = tree_from_canonical(_state_tree(model, state), values, rename)
    by_marker: dict[Any, Any] = {}
    # jaxlib 0.10 ships no type stub for PyTreeDef's methods.
    up_to = treedef.flatten_up_to(new)  # type: ignore[attr-defined]
    for index, value in zip(indices, up_to, strict=True):
        if _is_index(index):
            by_marker.setdefault(index.marker, value)
    sub = state.substate(model)
    leaves = jax.tree_util.tree_leaves(list(by_marker.values()))
    new_sub: eqx.nn.State = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(sub), leaves)
    for index in indices:
        if _is_index(index):
            got = jax.tree_util.tree_leaves(new_sub.get(index))
            want = jax.tree_util.tree_leaves(by_marker[index.marker])
            if not all(g is w for g, w in zip(got, want, strict=True)):
                raise RuntimeError(f"equinox State layout not as expected at {index.marker}")
    copy: eqx.nn.State = jax.tree_util.tree_map(lambda leaf: leaf, state)  # update() voids it
    return copy.update(new_sub)
