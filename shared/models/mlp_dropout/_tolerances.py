"""The MLP with dropout's tolerances, each with the measured reason it is needed."""

from __future__ import annotations

from shared.core import OptimizerConfig, Tolerance, Tolerances

from .._keras_native import keras_native_bounds, momentum_bound
from ._config import MlpDropoutConfig

ALIGNED = Tolerance(
    reason=(
        "aligned keys: every framework draws the same mask, and Linen, NNX, Haiku, Equinox "
        "(per-example Linear under vmap) and Keras run the same float32 ops in the same order: "
        "measured bitwise equal in the harness, native and scan loops over 200 steps of sgd "
        "and of adam (Keras's native loop: with its own sgd)"
    )
)

NATIVE_ACROSS = Tolerance(
    expected=True,
    reason=(
        "native keys: each framework derives its dropout keys its own way (Linen make_rng, an "
        "nnx.Rngs stream, hk.next_rng_key, an explicit Equinox key, a Keras SeedGenerator "
        "held as state), so the masks, and with them the trajectories, part at step 1; each "
        "framework must still equal itself"
    ),
)

EVAL = Tolerance(
    atol=1e-5,
    reason="eval logits on the test split across frameworks (dropout off), aligned keys",
)


KERAS_MOMENTUM = momentum_bound(
    "mlp-dropout", 5e-6, "measured over 200 steps, lr 0.3: params 1.2e-6 apart"
)


KERAS_MOMENTUM_EVAL = Tolerance(
    atol=1e-4,
    reason=(
        "mlp-dropout, keras/native with momentum: the params' rounding differences, through "
        "the logits (measured over 200 steps, lr 0.3: eval logits 2.3e-5 apart)"
    ),
)


def tolerances(config: MlpDropoutConfig, optimizer: OptimizerConfig) -> Tolerances:
    """Aligned: every pair within `ALIGNED`. Native: within a framework the same; across
    frameworks an expected difference. `keras/native`: Keras's own optimizer's bounds."""
    bounds = keras_native_bounds(optimizer, sgd=ALIGNED, momentum=KERAS_MOMENTUM)
    evals = {"keras/native": KERAS_MOMENTUM_EVAL} if optimizer.name == "momentum" else {}
    if config.aligned:
        return Tolerances(same=ALIGNED, trajectories=bounds, evals=evals)
    return Tolerances(same=ALIGNED, across=NATIVE_ACROSS, trajectories=bounds, evals=evals)
