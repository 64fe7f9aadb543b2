"""The MLP with dropout's section of the idioms guide: where each framework keeps its
randomness, how it derives each key, how it switches to eval."""

from __future__ import annotations

from shared.docs import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen/_mlp_dropout.py",
    "flax_nnx": "impl_flax/_nnx/_mlp_dropout.py",
    "haiku": "impl_haiku/_mlp_dropout.py",
    "equinox": "impl_equinox/_mlp_dropout.py",
    "keras": "impl_keras/_mlp_dropout.py",
}
"""Framework -> the file that holds its MLP with dropout."""

CONCEPTS = (
    Concept(
        "dropout-model",
        "Dropout, and where its key comes from",
        "Linen takes a key per call (`rngs={'dropout': key}`) and derives the layer's own with "
        "`make_rng`; NNX keeps an `nnx.Rngs` stream inside the model, as state (a key and a "
        "counter, `RngState`); Haiku derives keys from the `rng` given to `apply` with "
        "`hk.next_rng_key()`; Equinox takes an explicit key and the caller splits it; Keras's "
        "`Dropout` owns a `SeedGenerator`, whose (2,) uint32 seed is a non-trainable variable "
        "used as the key and advanced by [0, 1] per call. Each also accepts a raw key (Linen "
        "`rng=`, NNX `rngs=key`, `hk.dropout(key, ...)`, Equinox `key=`, Keras: the key's data "
        "written into the seed): that is how `--aligned` gives all five the same mask.",
        FILES,
        topic="randomness",
    ),
    Concept(
        "dropout-train-step",
        "The key of each training step",
        "Linen, Haiku and Equinox fold the step into one root key "
        "(`jax.random.fold_in(root, step)`), so a run resumed at step k draws what the "
        "uninterrupted run drew; NNX's stream advances its own counter on every draw, and that "
        "counter must be saved with the model (`jax.random.key_data` for its typed key); so "
        "must Keras's seed, which `stateless_call` returns among the non-trainable values.",
        FILES,
        topic="randomness",
    ),
)

GOTCHAS = (
    (
        "Dropout keys differ across frameworks",
        "The same integer seed gives different masks in each framework: Linen and Haiku "
        "derive a layer's key from the one you pass, and NNX draws from its own stream. "
        "`state-rosetta compare --model mlp-dropout --native` reports that difference as "
        "expected; `--aligned` passes every framework the same raw key.",
    ),
)

DOCS = ModelDocs(CONCEPTS, GOTCHAS)
