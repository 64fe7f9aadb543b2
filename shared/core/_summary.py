"""One leaf of one step of a pair, summarised: what the streaming comparison keeps.

A comparison never needs every value of every step: per leaf it needs the largest
difference, in absolute terms and in float32 units in the last place (ULP), the element
where it is worst and both values there, how many elements fail the tolerance, and the
leaf's scale and norm. `leaf_stats` computes exactly that, with the same code on the host
(NumPy, in float64) and on the device (`jax.numpy` under `jax.jit`, in float32), so that
only a few numbers per leaf cross to the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FLOATS = ("max_abs", "scale", "norm_a", "norm_b", "worst_a", "worst_b")
"""The float statistics of a leaf, in `leaf_stats`'s order."""
INTS = ("max_ulp", "failing", "worst_index", "worst_ulp", "bitwise", "nan")
"""The integer statistics (uint32) of a leaf, in `leaf_stats`'s order."""

NAN_ULP = 0xFFFFFFFF
"""The ULP distance reported where either value is NaN (no finite pair is this far apart)."""


@dataclass(frozen=True)
class Judge:
    """The tolerance of one leaf as numbers: `max_ulp`, `atol`, `rtol`, and `scale_ulp`.

    An element agrees when it is within `max_ulp` ULP, or within `atol + rtol * |b|`, or
    (when `scale_ulp` > 0) within `scale_ulp` ULP of the leaf's largest magnitude `|b|`:
    the lockstep's gradients and optimizer moments, where rounding noise around zero is
    many ULP of itself but few of its leaf. NaN never agrees.
    """

    max_ulp: int = 0
    atol: float = 0.0
    rtol: float = 0.0
    scale_ulp: int = 0


def _ordered(xp: Any, x32: Any) -> Any:
    """Float32 values as uint32 that increase with the value (-0 and +0 both 2^31)."""
    x32 = xp.where(x32 == 0, xp.zeros_like(x32), x32)
    if xp is np:
        bits = x32.view(np.uint32)
    else:
        bits = jax.lax.bitcast_convert_type(x32, jnp.uint32)
    high = xp.uint32(0x80000000)
    magnitude = bits & xp.uint32(0x7FFFFFFF)
    return xp.where(bits >= high, high - magnitude, bits | high)


def ulp_u32(xp: Any, a: Any, b: Any) -> Any:
    """Elementwise float32 ULP distance as uint32, exact for every finite pair; NaN:
    `NAN_ULP`."""
    a32, b32 = xp.asarray(a, xp.float32), xp.asarray(b, xp.float32)
    ua, ub = _ordered(xp, a32), _ordered(xp, b32)
    dist = xp.where(ua > ub, ua - ub, ub - ua)
    nan = xp.isnan(a32) | xp.isnan(b32)
    return xp.where(nan, xp.uint32(NAN_ULP), dist)


def leaf_stats(xp: Any, a: Any, b: Any, judge: Judge) -> tuple[Any, Any]:
    """The statistics of `a` against the reference `b` (same shape, at least one element).

    **Arguments:**

    - `xp`: `numpy` (the host: differences in float64) or `jax.numpy` (the device, under
      `jax.jit`: differences in float32, exact when the two values are within a factor of 2
      of each other, else within half an ULP of the difference).
    - `a`, `b`: the two values.
    - `judge`: the leaf's tolerance.

    **Returns:** a float vector in `FLOATS`' order and a uint32 vector in `INTS`' order. The
    worst element is the failing one furthest apart in absolute terms (NaN first), or, when
    none fails, the one furthest apart.
    """
    bitwise = xp.all(a == b)
    a, b = xp.ravel(a), xp.ravel(b)
    wide = xp.float64 if xp is np else xp.float32
    af, bf = xp.asarray(a, wide), xp.asarray(b, wide)
    ulp = ulp_u32(xp, a, b)
    nan = xp.isnan(af) | xp.isnan(bf)
    diff = xp.where(nan, xp.inf, xp.abs(af - bf))
    magnitude = xp.where(xp.isfinite(bf), xp.abs(bf), 0)
    scale = xp.max(magnitude)
    bound = judge.atol + judge.rtol * magnitude
    if judge.scale_ulp:
        spacing = xp.nextafter(xp.asarray(scale, xp.float32), xp.float32(xp.inf)) - xp.asarray(
            scale, xp.float32
        )
        bound = xp.maximum(bound, judge.scale_ulp * xp.asarray(spacing, wide))
    agrees = ((ulp <= judge.max_ulp) | (diff <= bound)) & ~nan
    failing = xp.sum(~agrees)
    worst = xp.argmax(xp.where(agrees, -1, diff))
    worst = xp.where(failing > 0, worst, xp.argmax(diff))
    floats = xp.stack(
        [
            xp.max(diff),
            scale,
            xp.sqrt(xp.sum(xp.where(xp.isfinite(af), af, 0) ** 2)),
            xp.sqrt(xp.sum(xp.where(xp.isfinite(bf), bf, 0) ** 2)),
            af[worst],
            bf[worst],
        ]
    ).astype(wide)
    ints = xp.stack(
        [
            xp.max(ulp),
            failing.astype(xp.uint32),
            worst.astype(xp.uint32),
            ulp[worst],
            bitwise.astype(xp.uint32),
            xp.any(nan).astype(xp.uint32),
        ]
    ).astype(xp.uint32)
    return floats, ints


def _device_stats(
    a: dict[str, jax.Array], b: dict[str, jax.Array], judges: dict[str, Judge]
) -> tuple[jax.Array, jax.Array]:
    names = sorted(a)
    out = [leaf_stats(jnp, a[n], b[n], judges[n]) for n in names]
    return jnp.stack([f for f, _ in out]), jnp.stack([i for _, i in out])


_jitted_stats = jax.jit(_device_stats, static_argnums=2)


class _Judges(dict[str, Judge]):
    """A hashable mapping (a static argument of the jitted statistics)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def step_stats(
    a: dict[str, Any], b: dict[str, Any], judges: dict[str, Judge], *, device: bool
) -> tuple[Any, Any]:
    """Statistics of every leaf of one step (leaves in sorted order): stacked floats (L, 6)
    and ints (L, 6), computed on the device under `jax.jit` (`device=True`: a pending
    result that asynchronous dispatch computes while the run goes on) or on the host."""
    if device:
        floats, ints = _jitted_stats(a, b, _Judges(judges))
        return floats, ints
    out = [leaf_stats(np, np.asarray(a[n]), np.asarray(b[n]), judges[n]) for n in sorted(a)]
    return np.stack([f for f, _ in out]), np.stack([i for _, i in out])


def spacing(value: float) -> float:
    """The float32 ULP at `value`'s magnitude (0's: the smallest subnormal)."""
    x = np.float32(abs(value)) if np.isfinite(value) else np.float32(np.finfo(np.float32).max)
    return float(np.nextafter(x, np.float32(np.inf)) - x)
