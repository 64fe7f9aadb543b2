"""The tolerance declared for each kind of comparison, with the reason it is needed."""

from __future__ import annotations

from ._compare import BITWISE, Tolerance

ORACLE_KEY = "oracle/float64"

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


MLP_BN_LOSS = Tolerance(
    max_ulp=8,
    reason=(
        "mlp-bn, across frameworks: XLA fuses each framework's graph differently, Equinox "
        "divides by sqrt(var + eps) where the others multiply by rsqrt, and uses the two-pass "
        "variance where the others use E(x^2) - E(x)^2; those 1-ULP differences feed the "
        "next steps (measured over 200 sgd steps, lr 0.1: training loss up to 6 ULP apart)"
    ),
)

MLP_BN_PARAMS = Tolerance(
    atol=2e-6,
    reason=(
        "mlp-bn params and running statistics, across frameworks: the same per-step rounding "
        "differences, accumulated over steps (measured over 200 sgd steps: params 3.6e-7, "
        "running statistics 4.8e-7 absolute; Haiku's EMA computes 1 - decay in float32)"
    ),
)

MLP_BN_ADAM_LOSS = Tolerance(
    max_ulp=32,
    reason=(
        "mlp-bn with adam (dense1 without bias), across frameworks: Adam divides each update "
        "by sqrt(v) + eps, so a gradient's rounding difference becomes a relative difference "
        "of the whole lr-sized step rather than of lr * gradient (measured over 200 steps, "
        "lr 0.01: training loss up to 20 ULP apart)"
    ),
)

MLP_BN_ADAM_PARAMS = Tolerance(
    atol=5e-6,
    reason=(
        "mlp-bn with adam (dense1 without bias): the same amplification in the params and, "
        "through them, the running statistics (measured over 200 steps: 1.4e-6 absolute)"
    ),
)

MLP_BN_EVAL_ATOL = 1e-5
"""Eval logits (test split) across frameworks, after converting the state: measured up to
2.9e-6 after 200 sgd steps; 1e-5 is what the issue asks, about 3x the measurement."""


def loop_of(key: str) -> str:
    """`"flax_nnx/scan"` -> `"scan"`."""
    return key.rpartition("/")[2]


def tolerance_for(a: str, b: str) -> Tolerance:
    """The tolerance for comparing trajectory `a` with trajectory `b`, by their keys.

    Float32 runs of the same loop, and the native loops against the harness step, must be
    bitwise equal; scan against per-step dispatch gets `SCAN`; float32 against the float64
    oracle gets `ORACLE`.
    """
    if ORACLE_KEY in (a, b):
        return ORACLE
    if (loop_of(a) == "scan") != (loop_of(b) == "scan"):
        return SCAN
    return BITWISE
