"""Comparing trajectories: bitwise flag, max abs and ULP differences, first divergence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._tolerance import BITWISE, Tolerance, ulp_distance
from ._trajectory import Trajectory


@dataclass(frozen=True)
class Divergence:
    """Where two trajectories first differ beyond the tolerance."""

    step: int
    leaf: str

    def __str__(self) -> str:
        return f"step {self.step}, {self.leaf}"


@dataclass(frozen=True)
class PairResult:
    """The comparison of trajectory `a` with the reference trajectory `b`."""

    a: str
    b: str
    bitwise: bool
    max_abs: float
    max_ulp: int
    first_divergence: Divergence | None
    tolerance: Tolerance
    loss_tolerance: Tolerance | None = None
    loss_max_ulp: int | None = None

    @property
    def agree(self) -> bool:
        return self.first_divergence is None

    @property
    def expected(self) -> bool:
        """Diverges, as its tolerance says to expect (an explained difference)."""
        return self.first_divergence is not None and self.tolerance.expected

    @property
    def ok(self) -> bool:
        """Agrees, or differs as expected: nothing to fail the run for."""
        return self.agree or self.tolerance.expected

    def to_json(self) -> dict[str, Any]:
        div = self.first_divergence
        extra: dict[str, Any] = {}
        if self.loss_tolerance is not None:
            extra = {
                "loss_tolerance": self.loss_tolerance.to_json(),
                "loss_max_ulp": self.loss_max_ulp,
            }
        return {
            "a": self.a,
            "b": self.b,
            "bitwise": self.bitwise,
            "max_abs": self.max_abs,
            "max_ulp": self.max_ulp,
            "first_divergence": None if div is None else {"step": div.step, "leaf": div.leaf},
            "expected": self.expected,
            "tolerance": self.tolerance.to_json(),
            **extra,
        }


def compare(
    a: Trajectory,
    b: Trajectory,
    tolerance: Tolerance = BITWISE,
    *,
    names: tuple[str, str] = ("a", "b"),
    loss_tolerance: Tolerance | None = None,
) -> PairResult:
    """Compare trajectory `a` with reference `b`, leaf by leaf, in causal order.

    A difference in shape, in the set of leaves, or in the number of steps is a divergence
    at the first place it shows. `loss_tolerance`, when given, judges the loss (and
    `tolerance` only params and state); the result then also holds the loss's max ULP.
    """
    bitwise = True
    max_abs = 0.0
    max_ulp = 0
    loss_ulp = 0
    first: Divergence | None = None
    b_leaves = {(s, leaf): v for s, leaf, v in b.leaves_in_causal_order()}
    seen = set()
    for step, leaf, va in a.leaves_in_causal_order():
        seen.add((step, leaf))
        vb = b_leaves.get((step, leaf))
        if vb is None or np.shape(va) != np.shape(vb):
            bitwise = False
            first = first or Divergence(step, leaf)
            continue
        bitwise = bitwise and bool(np.array_equal(va, vb))
        if np.size(va):
            diff = np.abs(np.asarray(va, np.float64) - np.asarray(vb, np.float64))
            max_abs = max(max_abs, float(np.max(diff)) if not np.isnan(diff).any() else np.inf)
            max_ulp = max(max_ulp, int(np.max(ulp_distance(va, vb))))
            if leaf == "loss":
                loss_ulp = max(loss_ulp, int(np.max(ulp_distance(va, vb))))
        judge = loss_tolerance if leaf == "loss" and loss_tolerance is not None else tolerance
        if first is None and not np.all(judge.agrees(va, vb)):
            first = Divergence(step, leaf)
    missing = [key for key in b_leaves if key not in seen]
    if missing:
        bitwise = False
        step, leaf = min(missing, key=lambda key: key[0])
        if first is None or step < first.step:
            first = Divergence(step, leaf)
    return PairResult(
        names[0],
        names[1],
        bitwise,
        max_abs,
        max_ulp,
        first,
        tolerance,
        loss_tolerance,
        None if loss_tolerance is None else loss_ulp,
    )


def leaf_value(trajectory: Trajectory, step: int, leaf: str) -> np.ndarray | None:
    """The value of `leaf` (`"loss"`, `"params.x"`, `"state.y"`) after `step`, or `None`."""
    if leaf == "loss":
        return trajectory.loss[step - 1] if 1 <= step <= trajectory.steps else None
    group, _, name = leaf.partition(".")
    values = getattr(trajectory, group, {}).get(name) if group in ("params", "state") else None
    return None if values is None or step >= len(values) else values[step]


def describe_divergence(a: Trajectory, b: Trajectory, divergence: Divergence) -> str:
    """One line: where `a` first parts from `b`, both values and their ULP distance.

    For arrays, the element shown is the one furthest apart in ULPs, with its index.
    """
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
    return f"{where}{element}: {_short(x)} against {_short(y)} ({ulp_text} apart)"


def _short(value: object) -> str:
    # The shortest text that reads back as the same float32 (numpy's float32 str).
    array = np.asarray(value)
    return str(array.astype(np.float32)) if array.dtype != np.float64 else repr(float(array))
