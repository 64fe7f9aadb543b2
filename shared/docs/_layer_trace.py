"""The layer-trace section of the idioms guide: how each framework lets a caller see every
layer's input and output inside one call, cut from its adapter base (`_adapter.py`). It
belongs to no one model (every model written on a base has it), so the guide shows it after
the models' sections; docs/comparison.md says how the first diverging layer uses it."""

from __future__ import annotations

from ._content import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen/_adapter.py",
    "flax_nnx": "impl_flax/_nnx/_adapter.py",
    "haiku": "impl_haiku/_adapter.py",
    "equinox": "impl_equinox/_adapter.py",
    "keras": "impl_keras/_adapter.py",
}
"""Framework -> the adapter base that holds its `layer_trace`."""

CONCEPTS = (
    Concept(
        "layer-trace",
        "Every layer's input and output, from one call",
        "Linen and Haiku have method interceptors (`nn.intercept_methods`, "
        "`hk.intercept_methods`): a function around every module method called inside the "
        "block, which sees the module (its path or name), the arguments and the result. "
        "Linen's `capture_intermediates` would record outputs only, and the first diverging "
        "layer needs the inputs too. NNX has no interceptor and `Module.sow` records only what "
        "a model's own code sows, so a fresh copy's submodules are swapped for recording "
        "modules (model surgery). Equinox has no hooks: the model is rebuilt with "
        "`eqx.tree_at`, each submodule wrapped in a recording module. Keras has no call hook "
        "and a subclassed model no functional graph, so each sublayer's `call` is wrapped on "
        "the instance for the one call. See [the first diverging layer]"
        "(../comparison.md#the-first-diverging-layer) for how `compare` uses it.",
        FILES,
        extra={"equinox": ["layer-recorded"]},  # the recording module the rebuild wraps in
        topic="layer-trace",
    ),
)

DOCS = ModelDocs(CONCEPTS)
