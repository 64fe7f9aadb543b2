"""The fast loops' section of the idioms guide: each framework's fastest own way to run its
training step, cut from its `native_variants` (`impl_*/_variants.py`), with NNX's and
Equinox's other recommended paths after it. It belongs to no one model: the same builders
serve every model."""

from __future__ import annotations

from ._content import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen/_variants.py",
    "flax_nnx": "impl_flax/_nnx/_variants.py",
    "haiku": "impl_haiku/_bias_adder.py",
    "equinox": "impl_equinox/_variants.py",
    "keras": "impl_keras/_variants.py",
}
"""Framework -> the file that holds its fastest loop."""

CONCEPTS = (
    Concept(
        "fast-loop",
        "Each framework's own way to cut the per-call overhead",
        "Every framework's training step compiles to the same program; what differs is the "
        "Python work around each call. Linen's plain dicts skip the `TrainState` dataclass; "
        "Haiku's pure `apply` under `jax.jit` already is the fast path. NNX's `nnx.jit` walks "
        "the model's and optimizer's object graph on every call: `nnx.cached_partial` caches "
        "that walk, tree mode (`graph=False`) and `nnx.jit_partial` treat modules as plain "
        "pytrees, and the functional loop (`nnx.split` once, `nnx.merge` inside plain "
        "`jax.jit`) leaves only the flattening of its `State`'s Python pytree nodes, gone when "
        "the loop carries the state as plain dicts (`nnx.to_pure_dict`, put back with "
        "`nnx.replace_by_pure_dict` inside the trace), NNX's fastest path. Equinox's "
        "`eqx.filter_jit` partitions every argument on every call: "
        "`eqx.partition` once outside plain `jax.jit`, then flattening the arrays into a list, "
        "removes it. Keras's `train_on_batch` moves every variable in and out of "
        "`keras.Variable`s and syncs the loss to the host; `stateless_call` under `jax.jit` "
        "threads the values as arrays. `state-rosetta bench` times each one (`native:NAME`), "
        "and `tests/core/test_native_variants.py` checks each trains bitwise like the harness "
        "step.",
        FILES,
        extra={
            "flax_nnx": (
                "variant-cached-partial",
                "variant-tree-mode",
                "variant-jit-partial",
                "variant-split-merge",
                "variant-split-merge-pure",
            ),
            "equinox": ("variant-partition",),
        },
        topic="fast-loops",
    ),
)

DOCS = ModelDocs(CONCEPTS)
