"""The MLP with dropout's tolerances, each with the measured reason it is needed."""

from __future__ import annotations

from shared.core import OptimizerConfig, Tolerance, Tolerances

from ._config import MlpDropoutConfig

ALIGNED = Tolerance(
    reason=(
        "aligned keys: every framework draws the same mask, and Linen, NNX, Haiku and Equinox "
        "(per-example Linear under vmap) run the same float32 ops in the same order: measured "
        "bitwise equal in the harness, native and scan loops over 200 steps of sgd and of adam"
    )
)

NATIVE_ACROSS = Tolerance(
    expected=True,
    reason=(
        "native keys: each framework derives its dropout keys its own way (Linen make_rng, an "
        "nnx.Rngs stream, hk.next_rng_key, an explicit Equinox key), so the masks, and with "
        "them the trajectories, part at step 1; each framework must still equal itself"
    ),
)

EVAL = Tolerance(
    atol=1e-5,
    reason="eval logits on the test split across frameworks (dropout off), aligned keys",
)


def tolerances(config: MlpDropoutConfig, optimizer: OptimizerConfig) -> Tolerances:
    """Aligned: every pair within `ALIGNED`. Native: within a framework the same; across
    frameworks an expected difference."""
    if config.aligned:
        return Tolerances(same=ALIGNED)
    return Tolerances(same=ALIGNED, across=NATIVE_ACROSS)
