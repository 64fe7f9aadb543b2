"""Comparing two runs as they go: one step at a time, summaries only, on the device.

A [`PairStream`][] takes each step's values of two runs (a flat mapping from leaf names to
arrays) and keeps, per leaf and step, the statistics of `_summary` (largest difference,
ULPs, the worst element, norms), never the values themselves, so that its memory does not
grow with the model or the steps. Device arrays are summarised under `jax.jit` and read
back one step late, so that asynchronous dispatch keeps the device busy meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from ._dataflow import LeafOrder
from ._divergence import NAN_ULP_REPORTED, Divergence, LeafDiff, PairResult
from ._summary import FLOATS, INTS, NAN_ULP, Judge, spacing, step_stats
from ._tolerance import BITWISE, Tolerance

SERIES_COLUMNS = ("step", "max_abs", "max_ulp", "ulp_at_scale", "norm_a", "norm_b")
"""The columns of a pair's per-step statistics of one leaf (its `series`: one row a step)."""


def judge_of(tolerance: Tolerance, scale_ulp: int = 0) -> Judge:
    """A tolerance's numbers, as the summaries apply them."""
    return Judge(tolerance.max_ulp, tolerance.atol, tolerance.rtol, scale_ulp)


@dataclass
class _Pending:
    step: int
    names: list[str]
    floats: Any
    ints: Any
    sizes: dict[str, int]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, tuple[Any, Any]]
    problems: list[LeafDiff]


@dataclass
class PairStream:
    """The running comparison of run `a` with the reference run `b`.

    **Arguments:**

    - `names`: the two runs' keys, for the report.
    - `tolerance`: judges every leaf; `loss_tolerance`, when given, judges `"loss"`.
    - `order`: sorts the leaves that diverge at a step (data-flow order).
    - `scale_ulp`: by leaf group (`"grads"`, `"opt_state"`), a relaxation of the tolerance to
      that many ULP of the leaf's largest magnitude (see `Judge`).
    - `kind`, `judged`: as [`PairResult`][] reports them.

    Call `push(step, a, b)` for every step, in order, then `result()`.
    """

    names: tuple[str, str]
    tolerance: Tolerance = BITWISE
    loss_tolerance: Tolerance | None = None
    order: LeafOrder = field(default_factory=LeafOrder)
    scale_ulp: Mapping[str, int] = field(default_factory=dict)
    kind: str = "across"
    judged: bool = True
    _pending: list[_Pending] = field(default_factory=list, init=False)
    _first: Divergence | None = field(default=None, init=False)
    _bitwise: bool = field(default=True, init=False)
    _max_abs: float = field(default=0.0, init=False)
    _max_ulp: int = field(default=0, init=False)
    _loss_ulp: int = field(default=0, init=False)
    _max_scale: float = field(default=0.0, init=False)
    _series: dict[str, list[tuple[int, float, int, float, float, float]]] = field(
        default_factory=dict, init=False
    )
    _failing: list[int] = field(default_factory=list, init=False)
    _last_step: int = field(default=0, init=False)

    @property
    def first_divergence(self) -> Divergence | None:
        """The first divergence found so far (steps still in flight not yet read)."""
        return self._first

    def push(self, step: int, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
        """Compare one step: `a` and `b` map leaf names to arrays (device or host)."""
        problems = [
            LeafDiff(leaf, problem="the leaf is missing from the first run")
            for leaf in sorted(set(b) - set(a))
        ] + [
            LeafDiff(leaf, problem="the leaf is missing from the reference")
            for leaf in sorted(set(a) - set(b))
        ]
        names, sizes, shapes, dtypes = [], {}, {}, {}
        for leaf in sorted(set(a) & set(b)):
            sa, sb = tuple(np.shape(a[leaf])), tuple(np.shape(b[leaf]))
            if sa != sb:
                problems.append(LeafDiff(leaf, problem=f"shape {sa} against the reference's {sb}"))
            elif int(np.prod(sa)) > 0:
                names.append(leaf)
                sizes[leaf], shapes[leaf] = int(np.prod(sa)), sa
                dtypes[leaf] = (_value_type(a[leaf]), _value_type(b[leaf]))
        floats = ints = None
        if names:
            judges = {leaf: self._judge(leaf) for leaf in names}
            va, vb = {n: a[n] for n in names}, {n: b[n] for n in names}
            floats, ints = step_stats(va, vb, judges, device=_on_device(va, vb))
        self._pending.append(_Pending(step, names, floats, ints, sizes, shapes, dtypes, problems))
        self._drain(keep=1)

    def result(self) -> PairResult:
        """The pair's verdict over every step pushed."""
        self._drain(keep=0)
        series = {leaf: np.asarray(rows, dtype=np.float64) for leaf, rows in self._series.items()}
        return PairResult(
            self.names[0],
            self.names[1],
            self._bitwise,
            self._max_abs,
            self._max_ulp,
            self._first,
            self.tolerance,
            self.loss_tolerance,
            None if self.loss_tolerance is None else self._loss_ulp,
            max_ulp_at_scale=self._max_scale,
            kind=self.kind,
            judged=self.judged,
            series=series,
            failing_steps=tuple(self._failing),
            last_step=self._last_step,
        )

    def _judge(self, leaf: str) -> Judge:
        if leaf == "loss" and self.loss_tolerance is not None:
            return judge_of(self.loss_tolerance)
        return judge_of(self.tolerance, self.scale_ulp.get(leaf.partition(".")[0], 0))

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            self._read(self._pending.pop(0))

    def _read(self, p: _Pending) -> None:
        diverging = list(p.problems)
        if p.problems:
            self._bitwise = False
        if p.names:
            floats, ints = np.asarray(p.floats, np.float64), np.asarray(p.ints, np.int64)
            f, i = {n: k for k, n in enumerate(FLOATS)}, {n: k for k, n in enumerate(INTS)}
            for row, leaf in enumerate(p.names):
                fl, it = floats[row], ints[row]
                nan = bool(it[i["nan"]])
                ulp = NAN_ULP_REPORTED if nan else int(it[i["max_ulp"]])
                max_abs = float(fl[f["max_abs"]])
                at_scale = max_abs / spacing(float(fl[f["scale"]]))
                self._bitwise = self._bitwise and bool(it[i["bitwise"]])
                self._max_abs = max(self._max_abs, max_abs)
                self._max_ulp = max(self._max_ulp, ulp)
                self._max_scale = max(self._max_scale, at_scale)
                if leaf == "loss":
                    self._loss_ulp = max(self._loss_ulp, ulp)
                self._series.setdefault(leaf, []).append(
                    (p.step, max_abs, ulp, at_scale, float(fl[f["norm_a"]]), float(fl[f["norm_b"]]))
                )
                if it[i["failing"]]:
                    worst_ulp = int(it[i["worst_ulp"]])
                    type_a, type_b = p.dtypes[leaf]
                    diverging.append(
                        LeafDiff(
                            leaf,
                            index=_unravel(int(it[i["worst_index"]]), p.shapes[leaf]),
                            a=type_a(fl[f["worst_a"]]),
                            b=type_b(fl[f["worst_b"]]),
                            abs_diff=max_abs,
                            ulp=NAN_ULP_REPORTED if worst_ulp == NAN_ULP else worst_ulp,
                            ulp_at_scale=at_scale,
                            failing=int(it[i["failing"]]),
                            size=p.sizes[leaf],
                        )
                    )
        self._last_step = max(self._last_step, p.step)
        # Lockstep steps are independent (each starts from the reference's values), so the
        # steps that fail tell an isolated rounding event from a formula; a free-running
        # pair fails at every step after its first, and keeps only that one.
        if diverging and self.kind == "lockstep" and len(self._failing) < MAX_FAILING_KEPT:
            self._failing.append(p.step)
        if diverging and self._first is None:
            leaves = sorted(diverging, key=lambda d: self.order.key(d.leaf))
            self._first = Divergence(p.step, leaves[0].leaf, tuple(leaves))


MAX_FAILING_KEPT = 1000
"""A lockstep pair's failing steps kept, at most (past that, they are not isolated)."""


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(k) for k in np.unravel_index(flat, shape)) if shape else ()


def _value_type(value: Any) -> Any:
    """The NumPy scalar type a leaf's values are shown in: float64 for float64 leaves (the
    oracle's), float32 for the rest (the models' dtype; integers are compared as float32)."""
    return np.float64 if np.dtype(getattr(value, "dtype", np.float32)) == np.float64 else np.float32


def _on_device(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Summarise on the device when both sides are float32-or-narrower JAX arrays."""
    values = [*a.values(), *b.values()]
    return all(isinstance(v, jax.Array) for v in values) and all(
        np.dtype(v.dtype) != np.float64 for v in values
    )
