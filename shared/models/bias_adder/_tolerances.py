"""The bias adder's tolerances, each with the measured reason it is needed."""

from __future__ import annotations

from shared.core import BITWISE, Tolerance, Tolerances

SCAN = Tolerance(
    max_ulp=4,
    reason=(
        "lax.scan compiles all steps into one program, where XLA may fuse and order the loss "
        "reduction differently from a one-step program (measured: loss up to 3 ULP apart, "
        "params and state bitwise)"
    ),
)

ORACLE = Tolerance(
    atol=1e-5,
    rtol=1e-5,
    reason=(
        "float32 against float64: every step rounds the EMA, the batch sums and the optimizer "
        "update (a few units of 6e-8 each), and the errors add up over steps: 50 steps allow "
        "about 1e-5 (measured over 50 steps: params and state 1.4e-6 absolute, loss 1.4e-6 "
        "relative)"
    ),
)

TOLERANCES = Tolerances(same=BITWISE, scan=SCAN, oracle=ORACLE)
"""Float32 runs of the same kind of loop, in any framework, are bitwise equal (the same
optimised HLO); scan against one call per step gets `SCAN`; the oracle gets `ORACLE`."""
