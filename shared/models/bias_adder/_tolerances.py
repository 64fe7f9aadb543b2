"""The bias adder's tolerances, each with the measured reason it is needed."""

from __future__ import annotations

from shared.core import BITWISE, OptimizerConfig, Tolerance, Tolerances

from .._keras_native import keras_native_bounds, momentum_bound
from ._config import BiasAdderConfig

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

KERAS_MOMENTUM = momentum_bound(
    "bias-adder",
    1e-5,
    "measured over 50 steps, lr 0.02, B5xD3 to B33xD17: params and state 5.4e-7 apart, "
    "loss 2.2e-7 relative; over 200 steps at B8xD4: 3.8e-6 absolute on a loss of 27",
    rtol=1e-5,
)

KERAS_ADAM = Tolerance(
    atol=1e-5,
    rtol=1e-5,
    reason=(
        "bias-adder, keras/native with adam or adamw: Keras's Adam adds epsilon before the "
        "bias correction and updates m as m + (g - m)(1 - b1); the bias adder's gradients are "
        "large against epsilon, so only rounding shows (measured over 50 steps, lr 0.02, "
        "B5xD3 to B33xD17: params and state 9.3e-8 apart, loss 2.3e-7 relative)"
    ),
)


DEVICES = Tolerance(
    atol=2e-5,
    rtol=1e-5,
    reason=(
        "bias-adder over N devices against one: each replica sums its slice of the batch and "
        "the replicas' sums are combined (psum, or XLA's partitioned reduction) in another "
        "order than one device's sum (measured over 50 steps at B16, 8 devices, every "
        "framework, shard_map and jit: 7.6e-6 absolute on a loss of 60, the mean 1 ULP "
        "apart from step 1)"
    ),
)


def tolerances(config: BiasAdderConfig, optimizer: OptimizerConfig) -> Tolerances:
    """`TOLERANCES`, Keras's own optimizer's bounds for `keras/native`, and the bound of a
    data-parallel run against one device."""
    bounds = keras_native_bounds(optimizer, sgd=BITWISE, momentum=KERAS_MOMENTUM, adam=KERAS_ADAM)
    return Tolerances(
        same=BITWISE,
        scan=SCAN,
        oracle=ORACLE,
        trajectories=bounds,
        devices={"shard_map": DEVICES, "jit": DEVICES},
    )
