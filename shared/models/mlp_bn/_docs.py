"""The MLP's section of the idioms guide: each framework's BatchNorm, cut from its file."""

from __future__ import annotations

from shared.docs import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen/_mlp_bn.py",
    "flax_nnx": "impl_flax/_nnx/_mlp_bn.py",
    "haiku": "impl_haiku/_mlp_bn.py",
    "equinox": "impl_equinox/_mlp_bn.py",
    "keras": "impl_keras/_mlp_bn.py",
}
"""Framework -> the file that holds its MLP with BatchNorm."""

CONCEPTS: tuple[Concept, ...] = (
    Concept(
        "mlp-bn-model",
        "BatchNorm and its defaults",
        "Each framework's built-in BatchNorm, set to agree (`--aligned`): Flax and Haiku "
        "normalise whole batches, Equinox normalises per example under a named `jax.vmap`; "
        "Haiku's `decay_rate` has no default and its statistics are a zero-debiased EMA; "
        'Equinox needs `mode="batch"` to train on batch statistics like the others. The '
        "defaults that differ, each backed by a test, are in `docs/batchnorm.md` "
        "(`tests/mlp_bn/test_mlp_bn_defaults.py`).",
        FILES,
        topic="batchnorm",
    ),
)

CONCEPTS = (
    *CONCEPTS,
    Concept(
        "cross-device",
        "The cross-device argument",
        "Under `jax.shard_map` each device normalises its own slice of the batch unless the "
        "layer is told the mapped axis: Linen's and NNX's `axis_name`, Haiku's "
        "`cross_replica_axis`, Equinox's `axis_name` (already its vmap axis, so both: "
        "`(vmap axis, device axis)`); Keras's `synchronized=True` is refused on the JAX "
        "backend. Left out, nothing fails: every replica keeps statistics of its own slice "
        "(`state-rosetta compare --devices 8 --parallel unsynced` shows where they part). "
        "Under plain `jax.jit` over a sharded batch no argument is needed: XLA sees the "
        "whole batch.",
        FILES,
        topic="data-parallel",
    ),
)

GOTCHAS = (
    (
        "BatchNorm's defaults differ",
        "Momentum 0.99 in Flax, no default decay in Haiku, Equinox's unset `mode` that trains "
        "on running statistics, running variance starting at 1 (Flax) or 0 (Haiku's EMA): "
        "`state-rosetta compare --model mlp-bn --defaults` shows the drift and names the "
        "default responsible. The table and its tests: `docs/batchnorm.md`, "
        "`tests/mlp_bn/test_mlp_bn_defaults.py`.",
    ),
)

DOCS = ModelDocs(CONCEPTS, GOTCHAS)
