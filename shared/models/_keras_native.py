"""Keras's native loop trains with Keras's own optimizer and reports Keras's loss: the cost.

Keras's SGD is optax's to the bit (`p - lr * g` either way). Its momentum and Adam compute the
same steps in other formulas, so a model states how far `keras/native` may move from the
harness's optax runs, measured on that model, through [`keras_native_bounds`][]. And the loss
`train_on_batch` returns is its loss tracker's: a mean weighted by the batch size.
"""

from __future__ import annotations

from shared.core import OptimizerConfig, Tolerance

KERAS_NATIVE = "keras/native"
"""The trajectory these bounds apply to."""

LOSS_TRACKER = Tolerance(
    max_ulp=1,
    reason=(
        "keras/native's loss: train_on_batch returns its loss tracker, a keras.metrics.Mean "
        "weighted by the batch size, so (loss * B) / B in float32: the loss itself when B is "
        "a power of 2, else up to 1 ULP from it (params and state stay bitwise)"
    ),
)

ADAM_EPSILON = Tolerance(
    expected=True,
    reason=(
        "keras/native with adam or adamw: Keras's Adam adds epsilon to sqrt(v) before the "
        "bias correction, optax to sqrt(v_hat): in optax's terms Keras's epsilon is "
        "eps / sqrt(1 - b2^t), 32x larger at step 1, so a parameter whose gradient is near "
        "1e-6 takes a visibly shorter step (measured over 200 steps, lr 0.01: mlp-bn params "
        "0.043 apart, mlp-dropout 0.060, test accuracy unchanged); with epsilon 0 on both "
        "sides they agree within rounding (tests/keras/test_keras_optimizers.py)"
    ),
)


def keras_native_bounds(
    optimizer: OptimizerConfig,
    *,
    sgd: Tolerance | None,
    momentum: Tolerance,
    adam: Tolerance = ADAM_EPSILON,
) -> dict[str, Tolerance | tuple[Tolerance, Tolerance]]:
    """`Tolerances.trajectories` for `keras/native`.

    **Arguments:**

    - `optimizer`: the run's optimizer.
    - `sgd`: the model's bound for params and state with sgd, where its loss would otherwise
      be judged bitwise: the loss then gets `LOSS_TRACKER`. `None`: the model's own bounds
      already cover a 1-ULP loss.
    - `momentum`: the model's measured bound with momentum.
    - `adam`: for adam and adamw (by default an explained, expected difference).
    """
    if optimizer.name == "sgd":
        return {} if sgd is None else {KERAS_NATIVE: (sgd, LOSS_TRACKER)}
    if optimizer.name == "momentum":
        return {KERAS_NATIVE: momentum}
    return {KERAS_NATIVE: adam}


def momentum_bound(model: str, atol: float, measured: str, rtol: float = 0.0) -> Tolerance:
    """The bound of `keras/native` with sgd and momentum, for one model."""
    return Tolerance(
        atol=atol,
        rtol=rtol,
        reason=(
            f"{model}, keras/native with momentum: Keras's SGD keeps m = mu*m - lr*g and adds "
            "it, optax keeps v = mu*v + g and subtracts lr*v: the same steps, rounded "
            f"differently, and the differences carried by the momentum ({measured})"
        ),
    )
