"""The bias stack's tolerances, each with the measured reason it is needed.

Measured against `jax/harness` on XLA:CPU (jax 0.10.2), 50 steps of fresh batches (standard
normal + 0.5), lr 1e-3 (the default), bias adder momentum 0.9: sgd, momentum, adam and
adamw at B8xD4, B5xD3 and B33xD17, depths 1 to 4; sgd, momentum and adam at B33xD17, depths
8 and 16; all four at B8xD4, depths 16 and 64. Every implementation's harness run,
`jax/scan`, `keras/native`; the oracle. The bounds hold where training is stable: where the
loss grows (B33xD17 with momentum from depth 8, to 514 and 770; B8xD4 with momentum at
depth 64 on these shifted batches, to 76), rounding differences grow with it (1.7e-5 to
0.03 between frameworks, 1.4e-3 to 0.05 against the oracle).
"""

from __future__ import annotations

from shared.core import BITWISE, OptimizerConfig, Tolerance, Tolerances

from .._keras_native import keras_native_bounds, momentum_bound
from ._config import BiasStackConfig

SCAN = Tolerance(
    max_ulp=8,
    reason=(
        "lax.scan compiles all steps into one program, where XLA may fuse and order the loss "
        "reduction differently from a one-step program (measured: bitwise, loss included, in every"
        " run above, and every framework's scan at depth 3; the 8 ULP are kept from the stack "
        "before it had Dense layers, whose loss was 5 ULP apart at depth 1)"
    ),
)

EQUINOX = Tolerance(
    max_ulp=512,
    atol=1e-5,
    rtol=1e-5,
    reason=(
        "bias-stack, equinox against the others: eqx.nn.Linear acts on one example, so the "
        "jax.vmap of its matvec compiles to W @ x^T (then a transpose) where the others "
        "compute x @ W, and the weight gradient to dz^T @ x where the others transpose "
        "x^T @ dz; XLA:CPU sums those dots in another order once D is larger than a few "
        "(measured: bitwise at B8xD4 and B5xD3 at every depth; at B33xD17 params and state up to "
        "2.6e-7 as |a - b| / (1 + |b|) and the loss 22 ULP to depth 8, 4.1e-6 and 355 ULP (on a "
        "loss of 207) at depth 16)"
    ),
)
"""`equinox/*` against every other float32 run (its own loops agree with each other)."""

ORACLE_BASE, ORACLE_PER_LAYER = 2e-5, 2.5e-7
"""`oracle_tolerance(depth)`'s atol and rtol: `ORACLE_BASE + depth * ORACLE_PER_LAYER`."""


def oracle_tolerance(depth: int) -> Tolerance:
    """Float32 against the float64 oracle at `depth` blocks: abs + rel, growing with depth."""
    bound = ORACLE_BASE + depth * ORACLE_PER_LAYER
    return Tolerance(
        atol=bound,
        rtol=bound,
        reason=(
            f"float32 against float64 at depth {depth}: every step rounds each block's dot, "
            "subtraction, mean and backward sums, and the loss squares x - h_L, a difference "
            "of two values of the size of x, so its relative error grows as it falls; "
            "adam, which divides by the gradients' size, carries those errors into the params "
            f"({ORACLE_BASE:g} + {ORACLE_PER_LAYER:g} per block; measured over 50 steps, as "
            "|a - b| / (1 + |b|): adam and adamw up to 1.4e-6 at every depth; sgd and momentum "
            "up to 5e-7 to depth 4, 1.3e-5 at depth 16 (B33xD17, sgd) and 5.6e-6 at depth 64 "
            "(B8xD4, sgd))"
        ),
    )


KERAS_MOMENTUM = momentum_bound(
    "bias-stack",
    5e-6,
    "measured over 50 steps, depths 1 to 16: at most 3e-7 as |a - b| / (1 + |b|), 6e-7 "
    "absolute, at B33xD17; loss 14 ULP",
    rtol=5e-6,
)

KERAS_ADAM = Tolerance(
    atol=5e-5,
    rtol=5e-5,
    reason=(
        "bias-stack, keras/native with adam or adamw: Keras's Adam adds epsilon before the "
        "bias correction (32x optax's epsilon at step 1) and updates m as m + (g - m)(1 - b1); "
        "as the fit converges some kernel entries' gradients fall towards epsilon, where the "
        "steps part by more than rounding (measured over 50 steps: at most 1.4e-5 as |a - b| / (1 "
        "+ |b|), 2.8e-5 absolute, at depth 1, B5xD3, where the fit converges fastest; 5.3e-6 at "
        "depth 64, B8xD4; 2e-7 elsewhere)"
    ),
)

DEVICES = Tolerance(
    atol=1e-6,
    rtol=1e-6,
    reason=(
        "bias-stack over N devices against one: each replica sums its slice of the batch and "
        "the replicas' sums are combined (psum, or XLA's partitioned reduction) in another "
        "order than one device's sum, in every block's batch mean and in the gradients "
        "(measured on the bias adders alone, before the stack had Dense layers, over 50 "
        "steps on 8 devices, every framework and loop, shard_map and jit, sgd and adam: "
        "depth 4 at B8 and depth 16 at B16 with momentum 0.5, at most 1.4e-7 as "
        "|a - b| / (1 + |b|); not re-measured with the kernels)"
    ),
)

_EQUINOX_KEYS = ("equinox/harness", "equinox/native", "equinox/scan")


def tolerances(config: BiasStackConfig, optimizer: OptimizerConfig) -> Tolerances:
    """Bitwise between frameworks and loops of one kind, but `EQUINOX` for Equinox's runs;
    `SCAN` for scan against a per-step loop; the oracle's bound at this depth; Keras's own
    optimizer's bounds for `keras/native`; `DEVICES` for a data-parallel run against one
    device."""
    bounds = keras_native_bounds(optimizer, sgd=BITWISE, momentum=KERAS_MOMENTUM, adam=KERAS_ADAM)
    return Tolerances(
        same=BITWISE,
        scan=SCAN,
        oracle=oracle_tolerance(config.depth),
        trajectories={**bounds, **dict.fromkeys(_EQUINOX_KEYS, EQUINOX)},
        devices={"shard_map": DEVICES, "jit": DEVICES},
    )
