"""Canonical names derived from a pytree's own key paths, plus an optional rename map.

An implementation's `to_canonical`/`from_canonical` can be written by hand, or derived: the
framework's tree already names every leaf (`jax.tree_util` key paths: dict keys, attribute
names, sequence indices), so the dotted path *is* a name, and a `rename` map turns the names
that differ from the model's canonical ones into those. Two implementations whose models are
laid out differently then need one mapping each, not two converters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

_KeyPath = tuple[Any, ...]


def _key_name(key: Any) -> str:
    """One key-path entry as a name part: a dict key, an attribute name or an index."""
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return str(key.name)
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return str(key.key)
    return str(key)  # a custom key type: its own spelling


def _path_name(path: Sequence[Any]) -> str:
    """A key path (from `jax.tree_util.tree_flatten_with_path`) as a dotted name.

    **Arguments:**

    - `path`: the key path, e.g. `(DictKey("dense1"), GetAttrKey("kernel"))`.

    **Returns:**

    The parts joined with `"."`, e.g. `"dense1.kernel"` (indices as numbers: `"layers.0.w"`).
    """
    return ".".join(_key_name(key) for key in path)


def _names(
    tree: PyTree, rename: Mapping[str, str] | None
) -> tuple[list[tuple[str, _KeyPath, Any]], Any]:
    """Every leaf of `tree` with its canonical name and key path, and the tree's structure.

    Raises `ValueError` for a `rename` key that names no leaf and for two leaves that end up
    under one canonical name.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    derived = [_path_name(path) for path, _ in leaves]
    rename = {} if rename is None else rename
    known = set(derived)
    unknown = [key for key in rename if key not in known]
    if unknown:
        raise ValueError(
            f"rename names {', '.join(map(repr, unknown))}, which match no leaf; the derived "
            f"names are: {', '.join(derived) or '(none)'}"
        )
    named: list[tuple[str, _KeyPath, Any]] = []
    owner: dict[str, str] = {}
    for name, (path, leaf) in zip(derived, leaves, strict=True):
        canonical = rename.get(name, name)
        this = f"{name!r} (key path {jax.tree_util.keystr(path)})"
        if canonical in owner:
            raise ValueError(
                f"two leaves have the canonical name {canonical!r}: {owner[canonical]} and "
                f"{this}; rename one of them"
            )
        owner[canonical] = this
        named.append((canonical, tuple(path), leaf))
    return named, treedef


def _describe(canonical: str, path: _KeyPath) -> str:
    derived = _path_name(path)
    return repr(canonical) if derived == canonical else f"{canonical!r} (derived {derived!r})"


def canonical_from_paths(tree: PyTree, rename: Mapping[str, str] | None = None) -> dict[str, Array]:
    """Flatten any pytree to `{canonical name: leaf}`, the names taken from its key paths.

    A leaf's derived name is its key path joined with `"."`: a dict key as itself, an
    attribute as its name, a sequence index as its number (`{"dense1": {"kernel": k}}` and a
    module with attribute `dense1.kernel` both give `"dense1.kernel"`; `[w0, w1]` gives
    `"0"`, `"1"`). `None` leaves are skipped.

    **Arguments:**

    - `tree`: any pytree of arrays.
    - `rename`: derived name -> canonical name, for the names that differ; every other leaf
      keeps its derived name.

    **Returns:**

    A new dict from canonical name to the leaf itself (not copied), in flattening order.

    **Raises:**

    `ValueError` when a `rename` key matches no leaf (the message lists the derived names),
    or when two leaves end up with the same canonical name (it names both).
    """
    named, _ = _names(tree, rename)
    return {canonical: leaf for canonical, _, leaf in named}


def tree_from_canonical(
    template: PyTree, values: Mapping[str, Array], rename: Mapping[str, str] | None = None
) -> PyTree:
    """The inverse of [`canonical_from_paths`][]: a tree like `template`, leaves from `values`.

    **Arguments:**

    - `template`: a pytree with the wanted structure; its leaves only give the expected
      shapes (arrays or `jax.ShapeDtypeStruct`s, e.g. from `jax.eval_shape`).
    - `values`: canonical name -> array, exactly one per template leaf.
    - `rename`: the same map as for [`canonical_from_paths`][] (derived -> canonical).

    **Returns:**

    A new tree with the template's structure whose leaves are `jnp.asarray(values[name])`
    (no cast: a value keeps its dtype); `None` leaves of the template stay `None`.

    **Raises:**

    `ValueError` for a bad `rename` (as [`canonical_from_paths`][]), a template leaf whose
    name is missing from `values`, a name in `values` that names no leaf, or a value whose
    shape differs from its template leaf's (the message names the leaf and both shapes).
    """
    named, treedef = _names(template, rename)
    missing = [_describe(c, path) for c, path, _ in named if c not in values]
    known = {c for c, _, _ in named}
    extra = sorted(name for name in values if name not in known)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"extra {', '.join(map(repr, extra))} (no such leaf)")
        raise ValueError(
            f"canonical values do not match the template: {'; '.join(parts)}; expected "
            f"names: {', '.join(sorted(known)) or '(none)'}"
        )
    leaves = []
    for canonical, path, leaf in named:
        value = jnp.asarray(values[canonical])
        expected = tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)
        if tuple(value.shape) != tuple(expected):
            raise ValueError(
                f"canonical value {_describe(canonical, path)} has shape {tuple(value.shape)}, "
                f"but the template leaf has shape {tuple(expected)}"
            )
        leaves.append(value)
    return jax.tree_util.tree_unflatten(treedef, leaves)
