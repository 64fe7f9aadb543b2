"""Comparing two recorded trajectories: bitwise flag, largest differences, first divergence.

The comparison itself is the streaming one ([`PairStream`][]), fed the recorded steps one
by one on the host; so a saved run (`state-rosetta diff`) and a live one are judged alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ._dataflow import LeafOrder
from ._divergence import Divergence, LeafDiff, PairResult, short
from ._stream import PairStream
from ._tolerance import BITWISE, Tolerance, ulp_distance
from ._trajectory import Trajectory

__all__ = ["Divergence", "LeafDiff", "PairResult", "compare", "describe_divergence"]


def step_values(trajectory: Trajectory, step: int) -> dict[str, np.ndarray]:
    """The leaves of one recorded step by name: `"state.NAME"`, `"params.NAME"` and, from
    step 1, `"loss"` (step 0 holds the initial values)."""
    out = {f"state.{k}": v[step] for k, v in trajectory.state.items() if step < len(v)}
    out.update({f"params.{k}": v[step] for k, v in trajectory.params.items() if step < len(v)})
    if 1 <= step <= trajectory.steps:
        out["loss"] = trajectory.loss[step - 1]
    return out


def steps_of(trajectory: Trajectory) -> Iterator[dict[str, np.ndarray]]:
    for step in range(trajectory.steps + 1):
        yield step_values(trajectory, step)


def compare(
    a: Trajectory,
    b: Trajectory,
    tolerance: Tolerance = BITWISE,
    *,
    names: tuple[str, str] = ("a", "b"),
    loss_tolerance: Tolerance | None = None,
    order: LeafOrder | None = None,
    kind: str = "across",
) -> PairResult:
    """Compare trajectory `a` with reference `b`, step by step, leaf by leaf.

    A difference in shape, in the set of leaves, or in the number of steps is a divergence
    at the first step it shows. `loss_tolerance`, when given, judges the loss (and
    `tolerance` only params and state); the result then also holds the loss's max ULP.
    `order` sorts the leaves that diverge at a step (by default: state, loss, params, each
    by name).
    """
    stream = PairStream(names, tolerance, loss_tolerance, order or LeafOrder(), kind=kind)
    for step in range(max(a.steps, b.steps) + 1):
        stream.push(step, step_values(a, step), step_values(b, step))
    return stream.result()


def leaf_value(trajectory: Trajectory, step: int, leaf: str) -> np.ndarray | None:
    """The value of `leaf` (`"loss"`, `"params.x"`, `"state.y"`) after `step`, or `None`."""
    if leaf == "loss":
        return trajectory.loss[step - 1] if 1 <= step <= trajectory.steps else None
    group, _, name = leaf.partition(".")
    values = getattr(trajectory, group, {}).get(name) if group in ("params", "state") else None
    return None if values is None or step >= len(values) else values[step]


def describe_divergence(a: Trajectory | None, b: Trajectory | None, divergence: Divergence) -> str:
    """One line: where `a` first parts from `b`, both values and their distances.

    A divergence from a comparison carries its leaves and needs no trajectories; one made by
    hand (a step and a leaf) is looked up in `a` and `b`, at the element furthest apart in
    ULPs.
    """
    if divergence.leaves or a is None or b is None:
        return divergence.describe()
    va = leaf_value(a, divergence.step, divergence.leaf)
    vb = leaf_value(b, divergence.step, divergence.leaf)
    where = f"step {divergence.step}, {divergence.leaf}"
    if va is None or vb is None:
        missing = "the first run" if va is None else "the reference"
        return f"{where}: the leaf is missing from {missing}"
    if np.shape(va) != np.shape(vb):
        return f"{where}: shape {np.shape(va)} against the reference's {np.shape(vb)}"
    ulps = ulp_distance(va, vb)
    index = np.unravel_index(int(np.argmax(ulps)), np.shape(ulps)) if np.ndim(ulps) else ()
    x, y = np.asarray(va)[index], np.asarray(vb)[index]
    element = f"[{', '.join(str(int(i)) for i in index)}]" if index else ""
    ulp = int(np.asarray(ulps)[index])
    ulp_text = "NaN" if ulp == np.iinfo(np.int64).max else f"{ulp} ULP"
    return f"{where}{element}: {short(x)} against {short(y)} ({ulp_text} apart)"
