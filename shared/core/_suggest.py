"""Measured tolerances: the rounding floor of a model, measured from its reference alone.

Two correct programs of the same model differ by rounding; how much depends on the model
(a BatchNorm over four examples amplifies it, a linear recurrence does not). So before a
porter declares a bound, the reference itself is run three ways and measured against its
jitted harness loop: its `lax.scan` (another program of the same step), the same step op by
op (unfused: another order of every rounding, as another framework's compiler would give),
and, where the model has one, its float64 oracle. Each measurement becomes a bound with
twice the measured room (two x86-64 CPUs here measured the same pairs up to 2.3x apart),
ready to paste into the model's spec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._compare import compare
from ._divergence import PairResult
from ._harness import run_harness, run_scan
from ._protocol import ImplementationFactory
from ._setup import RunSetup, build
from ._spec import ModelSpec
from ._stream import SERIES_COLUMNS
from ._tolerance import ORACLE_KEY, UNDECLARED, Tolerance, Tolerances
from ._trajectory import Trajectory

MARGIN = 2.0
"""How much room a suggested bound leaves above what was measured."""


@dataclass(frozen=True)
class Measured:
    """One measured pair: what was run against the reference's harness loop, how far apart
    they ended (`pair`), the bound suggested from it, and the one the spec declares."""

    name: str
    slot: str
    """The `Tolerances` field it suggests: `scan`, `same` or `oracle`."""
    what: str
    pair: PairResult
    suggested: Tolerance
    declared: Tolerance | None
    holds: bool | None
    """Whether the declared bound holds what was measured (`None`: none declared)."""
    runs: tuple[Trajectory, Trajectory] | None = field(default=None, repr=False, compare=False)
    """The measured run and the reference's harness run."""

    def verdict(self) -> str:
        """Whether the declared bound holds what was measured."""
        if self.declared is None or self.declared == UNDECLARED:
            return "declares none: the suggestion would be new"
        if self.declared.expected:
            return "declared as expected to differ: not a rounding bound"
        if self.pair.bitwise:
            return "measured bitwise: the declared bound holds it"
        if not self.holds and self.slot == "same":
            return (
                "TIGHTER than measured: it holds only where the implementations compile to "
                "the reference's program (the op-by-op run is another program)"
            )
        if not self.holds:
            return "TIGHTER than measured: a default run of this pair fails on rounding alone"
        return "holds what was measured"


def _up(value: float) -> float:
    """`value` times the margin, rounded up to two significant digits."""
    x = value * MARGIN
    if x <= 0 or not math.isfinite(x):
        return x
    exponent = math.floor(math.log10(x)) - 1
    return float(math.ceil(x / 10.0**exponent) * 10.0**exponent)


def suggest(pair: PairResult, what: str) -> Tolerance:
    """A bound with room for `pair`'s measured differences: bitwise when it was bitwise,
    else `MARGIN` x the loss's largest ULP distance (the loss is judged in ULPs: its scale
    is the model's) or `MARGIN` x the params' and state's largest absolute difference."""
    if pair.bitwise:
        return Tolerance(reason=f"{what}: measured bitwise")
    columns = {c: i for i, c in enumerate(SERIES_COLUMNS)}
    loss = pair.series.get("loss")
    loss_ulp = int(loss[:, columns["max_ulp"]].max()) if loss is not None and len(loss) else 0
    others = [s for leaf, s in pair.series.items() if leaf != "loss" and len(s)]
    leaves_abs = max((float(s[:, columns["max_abs"]].max()) for s in others), default=0.0)
    steps = 0 if loss is None else len(loss)
    return Tolerance(
        max_ulp=math.ceil(loss_ulp * MARGIN) if loss_ulp < 2**31 else 0,
        atol=float(f"{_up(leaves_abs):.2g}"),
        reason=(
            f"{what}: measured the loss up to {loss_ulp} ULP, params and state up to "
            f"{leaves_abs:.3g} absolute, over {steps} steps; {MARGIN:g}x that "
            "(--suggest-tolerances)"
        ),
    )


def measure_tolerances(
    spec: ModelSpec, run: RunSetup, reference: tuple[str, ImplementationFactory]
) -> list[Measured]:
    """Run the reference three ways and measure each against its jitted harness loop.

    **Arguments:** the model, its run's setup (steps, data, optimizer), and the reference
    implementation as `(label, factory)`.
    """
    label, factory = reference
    impl = build(label, factory, run.config, spec)
    declared = spec.tolerances_for(run.config, run.optimizer)
    name = impl.name

    def harness(jit: bool) -> Trajectory:
        params, state = run.initial(impl, run.config)
        return run_harness(
            impl, params, state, run.optimizer.make(), run.batches, spec.loss,
            jit=jit, inputs=spec.inputs, keys=run.keys,
        )[0]  # fmt: skip

    base = harness(True)
    params, state = run.initial(impl, run.config)
    scan = run_scan(
        impl, params, state, run.optimizer.make(), run.batches, spec.loss,
        inputs=spec.inputs, keys=run.keys,
    )  # fmt: skip
    runs: list[tuple[str, str, str, Trajectory, Tolerance | None]] = [
        (
            f"{name}/scan",
            "scan",
            "the reference's lax.scan against its harness loop",
            scan,
            declared.for_pair(f"{name}/scan", f"{name}/harness")[0],
        ),
        (
            f"{name}/op-by-op",
            "same",
            "the reference's harness step op by op against jitted (another rounding order, "
            "as another implementation's program would have)",
            harness(False),
            _declared_across(declared),
        ),
    ]
    if spec.oracle is not None:
        runs.append(
            (
                ORACLE_KEY,
                "oracle",
                "the reference against its float64 oracle",
                Trajectory.from_steps(_steps(spec.oracle(run.batches, run.config, run.optimizer))),
                declared.oracle,
            )
        )
    out = []
    for key, kind, what, trajectory, bound in runs:
        pair = compare(trajectory, base, names=(key, f"{name}/harness"))
        holds = None if bound is None else compare(trajectory, base, bound).agree
        out.append(
            Measured(key, kind, what, pair, suggest(pair, what), bound, holds, (trajectory, base))
        )
    return out


def _declared_across(declared: Tolerances) -> Tolerance | None:
    if declared.across is not None:
        return declared.across
    return declared.same


def _steps(oracle: Any) -> Any:
    from ._compare import steps_of

    return steps_of(oracle) if isinstance(oracle, Trajectory) else oracle


def tolerances_block(measured: Sequence[Measured]) -> str:
    """The suggestions as a `Tolerances(...)` expression to paste into a model spec."""
    lines = ["Tolerances("]
    for m in measured:
        t = m.suggested
        args = []
        if t.max_ulp:
            args.append(f"max_ulp={t.max_ulp}")
        if t.atol:
            args.append(f"atol={t.atol:g}")
        args.append(f"reason={t.reason!r}")
        lines.append(f"    {m.slot}=Tolerance({', '.join(args)}),")
    lines.append(")")
    return "\n".join(lines)
