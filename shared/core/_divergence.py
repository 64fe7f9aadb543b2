"""What a comparison reports: where two runs part, leaf by leaf, and the pair's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._tolerance import Tolerance

NAN_ULP_REPORTED = int(np.iinfo(np.int64).max)
ZERO = np.float32(0)
"""The ULP distance a report gives where a value is NaN (the JSON's `max_ulp`)."""


@dataclass(frozen=True)
class LeafDiff:
    """One leaf at a step where it diverges: its worst element and how far apart it is.

    **Fields:**

    - `leaf`: `"loss"`, `"params.NAME"`, `"state.NAME"` (lockstep: also `"grads.NAME"` and
      `"opt_state.PATH"`).
    - `index`: the worst element's index (the failing element furthest apart).
    - `a`, `b`: both values there (`b` is the reference's), as NumPy scalars of their dtype.
    - `abs_diff`: the leaf's largest |a - b|; `ulp`: the ULP distance at the worst element;
      `ulp_at_scale`: `abs_diff` in ULPs of the leaf's largest magnitude.
    - `failing`, `size`: how many elements fail the tolerance, of how many.
    - `problem`: instead of values, what is wrong (a shape or a missing leaf), or `None`.
    """

    leaf: str
    index: tuple[int, ...] = ()
    a: np.generic = ZERO
    b: np.generic = ZERO
    abs_diff: float = 0.0
    ulp: int = 0
    ulp_at_scale: float = 0.0
    failing: int = 0
    size: int = 0
    problem: str | None = None

    def describe(self) -> str:
        """`state.var[5]: 0.9660048 against 1.0595164 (1069605 ULP apart; |diff| 0.0935,
        1.6e+06 ULP at the leaf's scale)`."""
        if self.problem is not None:
            return f"{self.leaf}: {self.problem}"
        element = f"[{', '.join(str(i) for i in self.index)}]" if self.index else ""
        ulp = "NaN" if self.ulp >= NAN_ULP_REPORTED else f"{self.ulp} ULP apart"
        return (
            f"{self.leaf}{element}: {short(self.a)} against {short(self.b)} ({ulp}; |diff| "
            f"{self.abs_diff:.3g}, {self.ulp_at_scale:.3g} ULP at the leaf's scale)"
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"leaf": self.leaf}
        if self.problem is not None:
            return {**out, "problem": self.problem}
        return {
            **out,
            "index": list(self.index),
            "a": json_float(float(short(self.a))),
            "b": json_float(float(short(self.b))),
            "abs_diff": json_float(self.abs_diff),
            "ulp": self.ulp,
            "ulp_at_scale": json_float(self.ulp_at_scale),
            "failing": self.failing,
            "size": self.size,
        }


@dataclass(frozen=True)
class Divergence:
    """Where two runs first part beyond the tolerance: the step, and every leaf that
    diverges there in data-flow order (`leaf` is the first of them)."""

    step: int
    leaf: str
    leaves: tuple[LeafDiff, ...] = field(default=(), compare=False)
    layers: Any = field(default=None, compare=False)
    """A lockstep divergence's `LayerReport` (the first diverging layer), or `None`."""

    def __str__(self) -> str:
        return f"step {self.step}, {self.leaf}"

    def describe(self) -> str:
        """One line: the step and the first leaf's worst element, both values, distances."""
        if not self.leaves:
            return str(self)
        return f"step {self.step}, {self.leaves[0].describe()}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "leaf": self.leaf,
            "leaves": [leaf.to_json() for leaf in self.leaves],
        }
        if self.layers is not None:
            report = self.layers.to_json()
            out["layer"] = report.pop("layer")
            out["layers"] = report.pop("layers")
            out["layer_analysis"] = report
        return out


@dataclass(frozen=True)
class Parting:
    """Why a pair that agrees step by step still parts when running free.

    `step` is where the free-running trajectories first part; `reason` says why that is not
    a bug (for example: every lockstep step agrees locally within 2 ULP).
    """

    step: int
    reason: str


ISOLATED_EVERY = 50
"""At most one lockstep step in this many may part as an isolated event (see
`PairResult.isolated`)."""


@dataclass(frozen=True)
class PairResult:
    """The comparison of trajectory `a` with the reference trajectory `b`.

    **Fields:** `a`, `b` (their keys); `bitwise`; `max_abs`, `max_ulp` (over every leaf and
    step) and `max_ulp_at_scale` (`max_abs` in ULPs of each leaf's largest magnitude);
    `first_divergence`; `tolerance` and `loss_tolerance`, and the loss's own `loss_max_ulp`;
    `kind`: `"across"` (two implementations in the same loop), `"loop"` (one
    implementation's loop against its harness loop), `"lockstep"` (one step from the same
    values), `"oracle"`; `judged`: whether a divergence fails the run (a loop check the spec
    declares no bound for is only reported); `lockstep`: the lockstep result of an `across`
    pair of harness loops; `parting`: why a pair that parts still agrees (the lockstep, or
    the loops it runs through); `series`: per leaf, per step statistics.
    """

    a: str
    b: str
    bitwise: bool
    max_abs: float
    max_ulp: int
    first_divergence: Divergence | None
    tolerance: Tolerance
    loss_tolerance: Tolerance | None = None
    loss_max_ulp: int | None = None
    max_ulp_at_scale: float = 0.0
    kind: str = "across"
    judged: bool = True
    lockstep: PairResult | None = None
    parting: Parting | None = None
    series: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    failing_steps: tuple[int, ...] = ()
    """A lockstep result's steps beyond the bound (each starts from the reference's values)."""
    last_step: int = 0
    """The last step compared."""

    @property
    def agree(self) -> bool:
        """Within the tolerance, running free (or, for a lockstep result, step by step)."""
        return self.first_divergence is None

    @property
    def isolated(self) -> bool:
        """A lockstep result whose steps beyond the bound are isolated events: none is
        followed by another, the last step agrees, and at most one step in
        `ISOLATED_EVERY` is one (at least one is allowed).

        Every lockstep step starts from the reference's own values, so a wrong formula is
        wrong again at the next step; a value that rounding puts on the other side of a
        threshold (a relu's zero, a max) is not, and its step alone parts. The steps are
        reported, never hidden: a bug that fires at one step only reads the same.
        """
        steps = set(self.failing_steps)
        return (
            self.kind == "lockstep"
            and bool(steps)
            and all(s + 1 not in steps and s < self.last_step for s in steps)
            and len(steps) <= max(1, self.last_step // ISOLATED_EVERY)
        )

    @property
    def agrees_locally(self) -> bool:
        """A lockstep result with every step within the bound, or its partings isolated."""
        return self.agree or self.isolated

    @property
    def expected(self) -> bool:
        """Diverges, as its tolerance says to expect (an explained difference)."""
        return self.first_divergence is not None and self.tolerance.expected

    @property
    def ok(self) -> bool:
        """Nothing to fail the run for: it differs as expected, is a loop check that is only
        reported, agrees in lockstep (two harness loops), or agrees or parts for a stated
        reason (the other pairs)."""
        if self.tolerance.expected or not self.judged:
            return True
        if self.lockstep is not None:
            return self.lockstep.agrees_locally
        return self.agree or self.parting is not None

    @property
    def verdict(self) -> str:
        """`agrees`, `agrees locally` (parts running free, for `parting`'s reason),
        `differs (expected)`, `reported` (a loop check without a bound that parts) or
        `DIVERGES`."""
        if not self.ok:
            return "DIVERGES"
        if self.agree:
            return "agrees"
        if self.tolerance.expected:
            return "differs (expected)"
        return "reported" if not self.judged else "agrees locally"

    def to_json(self) -> dict[str, Any]:
        div = self.first_divergence
        extra: dict[str, Any] = {}
        if self.loss_tolerance is not None:
            extra = {
                "loss_tolerance": self.loss_tolerance.to_json(),
                "loss_max_ulp": self.loss_max_ulp,
            }
        if self.lockstep is not None:
            extra["lockstep"] = self.lockstep.to_json()
        if self.parting is not None:
            extra["parting"] = {"step": self.parting.step, "reason": self.parting.reason}
        if self.kind == "lockstep":
            extra["failing_steps"] = list(self.failing_steps)
            extra["isolated"] = self.isolated
        return {
            "a": self.a,
            "b": self.b,
            "kind": self.kind,
            "verdict": self.verdict,
            "judged": self.judged,
            "bitwise": self.bitwise,
            "max_abs": json_float(self.max_abs),
            "max_ulp": self.max_ulp,
            "max_ulp_at_scale": json_float(self.max_ulp_at_scale),
            "first_divergence": None if div is None else div.to_json(),
            "expected": self.expected,
            "tolerance": self.tolerance.to_json(),
            **extra,
        }


def short(value: object) -> str:
    """The shortest text that reads back as the same float32 (float64 values: `repr`)."""
    array = np.asarray(value)
    return str(array.astype(np.float32)) if array.dtype != np.float64 else repr(float(array))


def json_float(value: float) -> float | str:
    """A float for strict JSON: finite values as they are, others as `"NaN"`,
    `"Infinity"`, `"-Infinity"`."""
    value = float(value)
    if np.isfinite(value):
        return value
    return "NaN" if np.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
