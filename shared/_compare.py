"""Comparing trajectories: bitwise flag, max abs and ULP differences, first divergence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._trajectory import Trajectory


@dataclass(frozen=True)
class Tolerance:
    """How far two values may be apart and still agree.

    A pair of values agrees when it is within `max_ulp` float32 units in the last place OR
    within `atol + rtol * |b|` (so `Tolerance()` means bitwise). NaN never agrees.

    **Arguments:**

    - `max_ulp`: the largest allowed distance in float32 ULPs (values compared as float32).
    - `atol`, `rtol`: absolute and relative bounds, computed in float64.
    - `reason`: why this tolerance is needed; shown in reports.
    """

    max_ulp: int = 0
    atol: float = 0.0
    rtol: float = 0.0
    reason: str = (
        "same program: identical optimised HLO, so every float32 op runs in the same order"
    )

    def agrees(self, a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
        """Elementwise: does `a` agree with `b` (the reference)?"""
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        close = np.abs(a64 - b64) <= self.atol + self.rtol * np.abs(b64)
        return np.asarray((ulp_distance(a, b) <= self.max_ulp) | close)

    def describe(self) -> str:
        """A short label: `"bitwise"`, `"4 ULP"`, `"2e-05 abs+rel"`..."""
        parts = [f"{self.max_ulp} ULP"] if self.max_ulp else []
        if self.atol and self.atol == self.rtol:
            parts.append(f"{self.atol:g} abs+rel")
        else:
            parts += [f"{self.atol:g} abs"] if self.atol else []
            parts += [f"{self.rtol:g} rel"] if self.rtol else []
        return " or ".join(parts) or "bitwise"

    def to_json(self) -> dict[str, Any]:
        return {
            "max_ulp": self.max_ulp,
            "atol": self.atol,
            "rtol": self.rtol,
            "reason": self.reason,
        }


BITWISE = Tolerance()


def ulp_distance(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """Elementwise distance in float32 ULPs: how many float32 values lie from a to b.

    Both arguments are rounded to float32 first. Equal values (including +0 and -0) are 0
    apart; NaN is infinitely far from everything (returned as the int64 maximum).
    """
    a32 = np.asarray(a, np.float32)
    b32 = np.asarray(b, np.float32)
    ia = _ordered(a32)
    ib = _ordered(b32)
    dist = np.abs(ia - ib)
    nan = np.isnan(a32) | np.isnan(b32)
    return np.where(nan, np.iinfo(np.int64).max, dist)


def _ordered(x: np.ndarray) -> np.ndarray:
    # Map float32 bit patterns onto integers that increase with the value, with -0 == +0.
    bits = x.view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


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
