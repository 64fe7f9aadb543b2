"""The checkpoints' section of the idioms guide: what each framework's native loop hands to
orbax, cut from its `_native.py`. It belongs to no one model (every model's loops save
through the same code), so the guide shows it after the models' sections."""

from __future__ import annotations

from ._content import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen/_native.py",
    "flax_nnx": "impl_flax/_nnx/_native.py",
    "haiku": "impl_haiku/_native.py",
    "equinox": "impl_equinox/_native.py",
    "keras": "impl_keras/_native.py",
}
"""Framework -> the file that holds its native loop's checkpoint and restore."""

CONCEPTS = (
    Concept(
        "checkpoint",
        "Each framework's objects, saved with orbax",
        "Each loop hands orbax its framework's own objects as pytrees: Linen its `TrainState` "
        "(step, params, `opt_state`, `batch_stats`); NNX the unfiltered `nnx.state` of the "
        "model and of its `nnx.Optimizer`, loaded back with `nnx.update`; Haiku its params and "
        "state dicts and the optax state; Equinox the module's arrays (`eqx.filter`), "
        "`eqx.combine`d back with a fresh module's static part; Keras the values of its "
        "trainable, non-trainable and optimizer variables, `assign`ed back. A restore reads "
        "into an abstract target (shapes and dtypes) built from freshly built objects; typed "
        "PRNG keys are written as `jax.random.key_data` and wrapped back, and a fresh "
        "`TrainState`'s Python-int `step` takes the saved dtype. The orbax calls, the same for "
        "all five, are in `shared/checkpoint/_store.py`. `state-rosetta checkpoint resume` "
        "shows every loop resuming bitwise in a fresh process; `state-rosetta checkpoint "
        "transplant` moves params, state and optimizer state between frameworks through "
        "canonical names.",
        FILES,
        topic="checkpoints",
    ),
)

DOCS = ModelDocs(CONCEPTS)
