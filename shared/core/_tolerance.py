"""Tolerances: how far two float32 values may be apart and still agree, and why."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Tolerance:
    """How far two values may be apart and still agree.

    A pair of values agrees when it is within `max_ulp` float32 units in the last place OR
    within `atol + rtol * |b|` (so `Tolerance()` means bitwise). NaN never agrees.

    **Arguments:**

    - `max_ulp`: the largest allowed distance in float32 ULPs (values compared as float32).
    - `atol`, `rtol`: absolute and relative bounds, computed in float64.
    - `reason`: why this tolerance is needed; shown in reports.
    - `expected`: the two runs are expected to part ways (an explained difference, such as
      two frameworks' own random keys): a divergence is reported, with `reason`, but does not
      fail the run.
    """

    max_ulp: int = 0
    atol: float = 0.0
    rtol: float = 0.0
    reason: str = (
        "same program: identical optimised HLO, so every float32 op runs in the same order"
    )
    expected: bool = False

    def agrees(self, a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
        """Elementwise: does `a` agree with `b` (the reference)?"""
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        close = np.abs(a64 - b64) <= self.atol + self.rtol * np.abs(b64)
        return np.asarray((ulp_distance(a, b) <= self.max_ulp) | close)

    def describe(self) -> str:
        """A short label: `"bitwise"`, `"4 ULP"`, `"2e-05 abs+rel"`, `"expected to differ"`..."""
        if self.expected:
            return "expected to differ"
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
            "expected": self.expected,
        }


BITWISE = Tolerance()

UNDECLARED = Tolerance(reason="bitwise: the default, as the model's spec declares no tolerance")
"""The tolerance of a spec that declares none: bitwise."""


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


_ULP = re.compile(r"^\s*(\d+)\s*ulps?\s*$", re.IGNORECASE)


def parse_tolerance(text: str, *, reason: str = "given with --tolerance") -> Tolerance:
    """Read a tolerance from text: `"bitwise"`, `"4ulp"` (float32 ULPs) or `"1e-6"` (absolute).

    **Arguments:**

    - `text`: what the user wrote.
    - `reason`: the reason recorded with the tolerance.

    Raises `ValueError` naming what was expected.
    """
    if text.strip().lower() == "bitwise":
        return Tolerance(reason=reason)
    match = _ULP.match(text)
    if match:
        return Tolerance(max_ulp=int(match.group(1)), reason=reason)
    try:
        atol = float(text)
    except ValueError:
        atol = float("nan")
    if not np.isfinite(atol) or atol < 0:
        raise ValueError(
            f"--tolerance: expected 'bitwise', a count of float32 ULPs such as '4ulp', or an "
            f"absolute bound such as '1e-6', got {text!r}"
        )
    return Tolerance(atol=atol, reason=reason)


@dataclass(frozen=True)
class Tolerances:
    """Which tolerance each pair of trajectories of one model gets, each with its reason.

    Trajectory keys are `"<implementation>/<loop>"`; the oracle's is `ORACLE_KEY`.

    **Arguments:**

    - `same`: params and state (and the loss, unless `loss` is set) of two float32 runs of
      the same kind of loop: the default for every pair. `BITWISE` unless the model's
      implementations compile to different programs.
    - `scan`: a `lax.scan` run against a one-call-per-step run (`None`: `same`).
    - `oracle`: a float32 run against the float64 oracle (`None`: the model has no oracle).
    - `loss`: the loss, where it needs a bound of its own (`None`: as the other leaves).
    - `across`: two different implementations (`None`: as above). A tolerance with
      `expected=True` here says that implementations are expected to part ways.
    - `trajectories`: bounds of particular trajectories against any other float32 one, by
      key (e.g. `{"keras/native": ...}` for a native loop that runs its framework's own
      optimizer, not optax's): a tolerance for every leaf, or a pair (params and state,
      loss). They take precedence over `scan`, `same` and `loss`.
    - `devices`: by parallel mode (`"shard_map"`, `"jit"`, `"unsynced"`), a data-parallel
      run (`--devices N`) against the single-device run, where the replicas' partial sums
      are combined in another order (a mode left out: as above).
    - `devices_eval`: by parallel mode, the bound of a data-parallel run's held-out outputs
      against the single-device run's (a mode left out: `Evaluation.tolerance`).
    - `evals`: bounds of particular trajectories' held-out outputs, by key, where their
      training bounds let them end further from the reference than the model's
      `Evaluation.tolerance` (only `atol` is used).
    """

    same: Tolerance = BITWISE
    scan: Tolerance | None = None
    oracle: Tolerance | None = None
    loss: Tolerance | None = None
    across: Tolerance | None = None
    trajectories: Mapping[str, Tolerance | tuple[Tolerance, Tolerance]] = field(
        default_factory=dict, hash=False
    )
    evals: Mapping[str, Tolerance] = field(default_factory=dict, hash=False)
    devices: Mapping[str, Tolerance] = field(default_factory=dict, hash=False)
    devices_eval: Mapping[str, Tolerance] = field(default_factory=dict, hash=False)

    def for_pair(self, a: str, b: str) -> tuple[Tolerance, Tolerance | None]:
        """(tolerance, loss tolerance or None) for trajectory `a` against `b`, by their keys."""
        if ORACLE_KEY in (a, b):
            if self.oracle is None:
                raise ValueError("this model declares no oracle tolerance")
            return self.oracle, None
        if self.across is not None and a.partition("/")[0] != b.partition("/")[0]:
            return self.across, None
        for key in (a, b):
            if key in self.trajectories:
                bound = self.trajectories[key]
                return bound if isinstance(bound, tuple) else (bound, None)
        if self.scan is not None and (loop_of(a) == "scan") != (loop_of(b) == "scan"):
            return self.scan, None
        return self.same, self.loss

    def overridden(self, tolerance: Tolerance) -> Tolerances:
        """Every float32 pair judged by `tolerance` (`--tolerance`); the oracle's bound and an
        expected difference (across implementations, or of a trajectory) stays."""
        across = self.across if self.across is not None and self.across.expected else None
        expected = {
            k: t for k, t in self.trajectories.items() if isinstance(t, Tolerance) and t.expected
        }
        return Tolerances(same=tolerance, oracle=self.oracle, across=across, trajectories=expected)


ORACLE_KEY = "oracle/float64"
"""The float64 oracle's trajectory key."""


def loop_of(key: str) -> str:
    """`"flax_nnx/scan"` -> `"scan"`."""
    return key.rpartition("/")[2]
