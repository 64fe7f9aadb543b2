"""The order in which a training step computes its leaves, read off the reference's jaxpr.

Within a step the model first writes its state (in the order its forward pass writes each
state leaf), then computes the loss, then its gradients (the backward pass: the last layer
first), then the optimizer writes the new params (in the order the forward pass first reads
each param) and its own state. A report that lists the leaves where two runs part in this
order names first the leaf where the difference starts, not the one whose name sorts first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
from jax.extend import core as jcore

from ._plugin import contained  # the user's code may call sys.exit()
from ._protocol import Implementation, Params, State

GROUPS = {"state": 0, "loss": 1, "grads": 2, "params": 3, "opt_state": 4}
"""The order of the kinds of leaves within one step (the lockstep compares all five)."""

_UNPLACED = 1 << 30


@dataclass(frozen=True)
class LeafOrder:
    """Sorts leaf names (`"state.bn.mean"`, `"loss"`, `"params.dense1.kernel"`, ...) within
    a step: by kind (`GROUPS`), then by the forward pass's position of each, then by name.

    **Fields:** `positions` (`"state.NAME"` -> where the forward pass writes it,
    `"params.NAME"` -> where it first reads it; leaves it never writes or reads come after
    the others) and `source` (how the positions were found, for the report).
    """

    positions: Mapping[str, int] = field(default_factory=dict)
    source: str = "names (no data-flow order was derived)"

    def key(self, leaf: str) -> tuple[int, int, str]:
        group, _, name = leaf.partition(".")
        rank = GROUPS.get(group, len(GROUPS))
        if group == "grads":  # the backward pass: the last param read first
            return rank, -self.positions.get(f"params.{name}", -_UNPLACED), name
        if group == "opt_state":
            return rank, self._param_position(name), name
        return rank, self.positions.get(leaf, _UNPLACED), name

    def _param_position(self, path: str) -> int:
        # An optimizer moment is named by its optax path and then the param's canonical name.
        parts = path.split(".")
        for i in range(len(parts)):
            position = self.positions.get("params." + ".".join(parts[i:]))
            if position is not None:
                return position
        return _UNPLACED

    def sorted(self, leaves: list[str]) -> list[str]:
        return sorted(leaves, key=self.key)


def forward_order(
    impl: Implementation, params: Params, state: State, x: Any, key: jax.Array | None = None
) -> LeafOrder:
    """The data-flow order of `impl`'s training call on input `x`, by canonical names.

    Traces `impl.apply(params, state, x, train=True)` to a jaxpr, inlines every call inside
    it, and numbers its equations in program order; traces `impl.to_canonical` to find which
    native leaf each canonical name comes from. A model whose tracing fails gets the name
    order, and `source` says why.
    """
    try:
        with contained(f"tracing {impl.name}'s forward pass"):
            return _forward_order(impl, params, state, x, key)
    except Exception as e:  # a fallback, not a failure: the comparison itself is unaffected
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        return LeafOrder(source=f"names (the data-flow analysis failed: {reason[:200]})")


def _forward_order(
    impl: Implementation, params: Params, state: State, x: Any, key: jax.Array | None
) -> LeafOrder:
    extra = {} if key is None else {"key": key}
    closed, shapes = jax.make_jaxpr(
        lambda p, s: impl.apply(p, s, x, train=True, **extra), return_shape=True
    )(params, state)
    n_outputs = len(jax.tree.leaves(shapes[0]))
    reads, writes = _schedule(closed.jaxpr)
    invars = closed.jaxpr.invars
    outvars = closed.jaxpr.outvars[n_outputs:]
    param_names = _sources(lambda p: impl.to_canonical(p, state)[0], params)
    state_names = _sources(lambda s: impl.to_canonical(params, s)[1], state)
    positions: dict[str, int] = {}

    def place(name: str, position: int | None) -> None:
        if position is not None:
            positions[name] = min(position, positions.get(name, _UNPLACED))

    for name, leaves in param_names.items():
        for i in leaves:
            place(f"params.{name}", reads.get(invars[i]))
    for name, leaves in state_names.items():
        for i in leaves:
            var = outvars[i] if i < len(outvars) else None
            place(f"state.{name}", writes.get(var) if isinstance(var, jcore.Var) else None)
    return LeafOrder(positions, source=f"data flow of {impl.name}'s forward pass")


_CALLS = {"pjit", "jit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call"}
_CALLS_VJP = {"custom_vjp_call", "custom_vjp_call_jaxpr"}


def _inner(eqn: Any) -> Any:
    """The jaxpr a call-like equation runs with its inputs one to one, or `None`."""
    name = eqn.primitive.name
    if name in _CALLS:
        inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    elif name in _CALLS_VJP:
        inner = eqn.params.get("call_jaxpr", eqn.params.get("fun_jaxpr"))
    else:
        return None
    inner = getattr(inner, "jaxpr", inner)
    if inner is None or len(inner.invars) != len(eqn.invars):
        return None
    return inner


def _schedule(jaxpr: Any) -> tuple[dict[Any, int], dict[Any, int]]:
    """Number every primitive equation in program order, calls inlined: the first position
    at which each top-level input is read, and the position at which each variable that
    reaches a top-level output is written."""
    counter = itertools.count()
    reads: dict[Any, int] = {}
    writes: dict[Any, int] = {}
    root: dict[Any, Any] = {}  # an inner variable -> the outer variable it stands for

    def resolve(v: Any) -> Any:
        while v in root:
            v = root[v]
        return v

    def visit(jaxpr: Any) -> None:
        for eqn in jaxpr.eqns:
            inner = _inner(eqn)
            if inner is not None:
                for a, b in zip(inner.invars, eqn.invars, strict=True):
                    if isinstance(b, jcore.Var):
                        root[a] = b
                visit(inner)
                for a, b in zip(eqn.outvars, inner.outvars, strict=True):
                    if isinstance(b, jcore.Var):
                        root[a] = b
                continue
            position = next(counter)
            for v in eqn.invars:
                if isinstance(v, jcore.Var):
                    reads.setdefault(resolve(v), position)
            for v in eqn.outvars:
                writes[v] = position

    visit(jaxpr)
    top_reads = {v: reads[v] for v in jaxpr.invars if v in reads}
    top_writes = {v: writes[resolve(v)] for v in jaxpr.outvars if resolve(v) in writes}
    return top_reads, top_writes


def covered(impl: Implementation, params: Params, state: State) -> tuple[list[bool], list[bool]]:
    """Which native leaves of params and state some canonical name is computed from.

    A leaf no canonical name covers is the implementation's own bookkeeping (a step
    counter, say), which another implementation's values cannot give it. Tracing failures
    count every leaf as covered.
    """
    n_params, n_state = len(jax.tree.leaves(params)), len(jax.tree.leaves(state))
    try:
        with contained(f"tracing {impl.name}'s to_canonical"):
            from_params = _sources(lambda p: impl.to_canonical(p, state)[0], params)
            from_state = _sources(lambda s: impl.to_canonical(params, s)[1], state)
    except Exception:
        return [True] * n_params, [True] * n_state
    used_params = set().union(*from_params.values()) if from_params else set()
    used_state = set().union(*from_state.values()) if from_state else set()
    return [i in used_params for i in range(n_params)], [i in used_state for i in range(n_state)]


def _sources(to_canonical: Callable[[Any], Mapping[str, Any]], tree: Any) -> dict[str, list[int]]:
    """Canonical name -> the indices of the native leaves of `tree` it is computed from."""
    closed, shapes = jax.make_jaxpr(to_canonical, return_shape=True)(tree)
    names = sorted(shapes)  # jax flattens a dict by its sorted keys
    jaxpr = closed.jaxpr
    index = {v: i for i, v in enumerate(jaxpr.invars)}
    made_by = {v: eqn for eqn in jaxpr.eqns for v in eqn.outvars}

    def inputs_of(v: Any, seen: set[Any]) -> set[int]:
        if not isinstance(v, jcore.Var) or v in seen:
            return set()
        seen.add(v)
        if v in index:
            return {index[v]}
        eqn = made_by.get(v)
        if eqn is None:
            return set()
        return set().union(*(inputs_of(u, seen) for u in eqn.invars))

    return {name: sorted(inputs_of(v, set())) for name, v in zip(names, jaxpr.outvars, strict=True)}
