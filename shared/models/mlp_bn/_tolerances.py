"""The MLP's tolerances across frameworks, each with the measured reason it is needed."""

from __future__ import annotations

from shared.core import OptimizerConfig, Tolerance, Tolerances

from .._keras_native import keras_native_bounds, momentum_bound
from ._config import MlpBnConfig

ADAPTIVE = ("adam", "adamw")  # optimizers for which the Dense bias before BatchNorm is dropped

LOSS = Tolerance(
    max_ulp=8,
    reason=(
        "mlp-bn, across frameworks: XLA fuses each framework's graph differently, Equinox "
        "divides by sqrt(var + eps) where the others multiply by rsqrt, and uses the two-pass "
        "variance where the others use E(x^2) - E(x)^2; those 1-ULP differences feed the "
        "next steps (measured over 200 sgd steps, lr 0.1: training loss up to 6 ULP apart)"
    ),
)

PARAMS = Tolerance(
    atol=2e-6,
    reason=(
        "mlp-bn params and running statistics, across frameworks: the same per-step rounding "
        "differences, accumulated over steps (measured over 200 sgd steps on two x86-64 "
        "CPUs: params up to 3.6e-7, running statistics up to 5.4e-7 absolute; Haiku's EMA "
        "computes 1 - decay in float32)"
    ),
)

ADAM_LOSS = Tolerance(
    max_ulp=32,
    reason=(
        "mlp-bn with adam (dense1 without bias), across frameworks: Adam divides each update "
        "by sqrt(v) + eps, so a gradient's rounding difference becomes a relative difference "
        "of the whole lr-sized step rather than of lr * gradient (measured over 200 steps, "
        "lr 0.01: training loss up to 20 ULP apart)"
    ),
)

ADAM_PARAMS = Tolerance(
    atol=5e-6,
    reason=(
        "mlp-bn with adam (dense1 without bias): the same amplification in the params and, "
        "through them, the running statistics (measured over 200 steps: 1.4e-6 absolute)"
    ),
)

EVAL_ATOL = 1e-5
"""Eval logits (test split) across frameworks, after converting the state: measured up to
2.9e-6 after 200 sgd steps; 1e-5 is what the issue asks, about 3x the measurement."""


EVAL = Tolerance(
    atol=EVAL_ATOL,
    reason=(
        "eval logits on the test split across frameworks, after converting the state: "
        "measured up to 2.9e-6 after 200 sgd steps"
    ),
)


KERAS_MOMENTUM = momentum_bound(
    "mlp-bn", 5e-6, "measured over 200 steps, lr 0.1: params 8.9e-7 apart, loss 48 ULP"
)


DEVICES = Tolerance(
    atol=2e-4,
    reason=(
        "mlp-bn over N devices against one: the replicas' partial sums of the batch "
        "statistics and gradients combine in another order, and at step 93 a hidden unit's "
        "pre-activation sits so near 0 that this rounding flips its relu and the step "
        "(measured over 200 sgd steps, 8 devices: params 5.2e-5 apart from step 93 in the "
        "frameworks whose rounding falls on the other side, 3.6e-7 elsewhere)"
    ),
)

DEVICES_EVAL = Tolerance(
    atol=5e-4,
    reason="eval logits over N devices against one: the same flip (measured 1.8e-4)",
)


def tolerances(config: MlpBnConfig, optimizer: OptimizerConfig) -> Tolerances:
    """Every pair, within a framework too, gets the cross-framework bounds for the optimizer;
    `keras/native`, Keras's own optimizer's."""
    bounds = keras_native_bounds(optimizer, sgd=None, momentum=KERAS_MOMENTUM)
    adaptive = optimizer.name in ADAPTIVE
    return Tolerances(
        same=ADAM_PARAMS if adaptive else PARAMS,
        loss=ADAM_LOSS if adaptive else LOSS,
        trajectories=bounds,
        devices={"shard_map": DEVICES, "jit": DEVICES},
        devices_eval={"shard_map": DEVICES_EVAL, "jit": DEVICES_EVAL},
    )
