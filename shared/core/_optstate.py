"""Optimizer states under canonical names: every moment that mirrors the params, renamed.

An optax state holds nodes shaped like the params (Adam's `mu` and `nu`, momentum's trace)
and scalars (a step count). Since every implementation is trained by the same optax
transformation, the state's paths are the same everywhere; only the mirrored params differ,
and those convert like the params themselves (`to_canonical(moments, state)`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._protocol import Implementation, Params, State


def leaf_name(path: tuple[Any, ...]) -> str:
    """A tree path as a dotted name: `0.mu.dense1.kernel`."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.FlattenedIndexKey):
            parts.append(str(k.key))
        else:
            parts.append(str(k))
    return ".".join(parts)


def named_leaves(tree: Any) -> dict[str, Any]:
    """Every leaf of `tree` (`None` is no leaf) by its dotted name."""
    return {leaf_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def mirrors(params: Params) -> Callable[[Any], bool]:
    """A predicate: is a node of an optax state shaped like the params tree?"""
    treedef: Any = jax.tree.structure(params)

    def is_mirror(node: Any) -> bool:
        return bool(jax.tree.structure(node) == treedef)

    return is_mirror


def canonical_opt_state(
    impl: Implementation, params: Params, state: State, opt_state: optax.OptState
) -> dict[str, Any]:
    """`opt_state` as flat canonical names: `"0.mu.dense1.kernel"`, `"0.count"`, ..."""
    is_mirror = mirrors(params)

    def node(x: Any) -> Any:
        return dict(impl.to_canonical(x, state)[0]) if is_mirror(x) else x

    return named_leaves(jax.tree.map(node, opt_state, is_leaf=is_mirror))


def opt_state_from_canonical(
    impl: Implementation,
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    canonical: Mapping[str, Any],
    canonical_state: Mapping[str, Any],
) -> optax.OptState:
    """Undo `canonical_opt_state` for `impl`: its own optax state for `params`, every
    mirrored node from `canonical` (through `from_canonical`), the rest by path.

    Raises `KeyError` naming a path that `canonical` lacks.
    """
    is_mirror = mirrors(params)

    def node(path: Any, template: Any) -> Any:
        prefix = leaf_name(path)
        if is_mirror(template):
            head = f"{prefix}." if prefix else ""
            moments = {k[len(head) :]: v for k, v in canonical.items() if k.startswith(head)}
            return impl.from_canonical(moments, canonical_state)[0]
        return jnp.asarray(canonical[prefix], dtype=jnp.asarray(template).dtype)

    return jax.tree_util.tree_map_with_path(node, tx.init(params), is_leaf=is_mirror)
