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


DEVICES_JIT = Tolerance(
    atol=2e-6,
    reason=(
        "mlp-dropout over N devices with jax.jit (GSPMD) against one: the one-device mask is "
        "drawn and partitioned, so only the reductions' order differs (measured over 200 "
        "steps, 8 devices: 4.8e-7)"
    ),
)

DEVICES_SHARD_MAP = Tolerance(
    expected=True,
    reason=(
        "mlp-dropout over N devices under shard_map: each replica draws a (B/N, H) mask from "
        "the step's key, so every replica drops the same units of its own slice, and none of "
        "the masks is a slice of the one-device (B, H) mask: the runs part at step 1 "
        "(fold the replica's axis_index into the key for independent masks)"
    ),
)


EQUINOX_ALIGNED = Tolerance(
    atol=1e-6,
    reason=(
        "aligned keys, Equinox: its per-example Linear under vmap is one dot product per "
        "example, which XLA sums in the others' order on AVX-512 x86-64 CPUs (bitwise there) "
        "but not on an AVX2 one: 1 ULP in dense1.kernel at step 1, at most 2.98e-07 (7.5 ULP "
        "at the leaf's scale) over 200 steps of sgd and 2.4e-07 of adam (lr 0.01), its "
        "held-out logits up to 3.8e-06 apart"
    ),
)
"""Equinox's bound against the other frameworks with aligned keys (its own loops: bitwise)."""


def tolerances(config: MlpDropoutConfig, optimizer: OptimizerConfig) -> Tolerances:
    """Aligned: every pair within `ALIGNED`. Native: within a framework the same; across
    frameworks an expected difference. `keras/native`: Keras's own optimizer's bounds."""
    bounds = keras_native_bounds(optimizer, sgd=ALIGNED, momentum=KERAS_MOMENTUM)
    evals = {"keras/native": KERAS_MOMENTUM_EVAL} if optimizer.name == "momentum" else {}
    devices = {"jit": DEVICES_JIT, "shard_map": DEVICES_SHARD_MAP, "unsynced": DEVICES_SHARD_MAP}
    if config.aligned:
        equinox = {f"equinox/{loop}": EQUINOX_ALIGNED for loop in ("harness", "native", "scan")}
        bounds = {**equinox, **bounds}
        return Tolerances(same=ALIGNED, trajectories=bounds, evals=evals, devices=devices)
    return Tolerances(
        same=ALIGNED, across=NATIVE_ACROSS, trajectories=bounds, evals=evals, devices=devices
    )
