"""The decoder's section of the idioms guide: each framework's attention layer and its
key/value cache, cut from the framework files."""

from __future__ import annotations

from shared.docs import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen/_decoder_cache.py",
    "flax_nnx": "impl_flax/_nnx/_decoder_cache.py",
    "haiku": "impl_haiku/_decoder_cache.py",
    "equinox": "impl_equinox/_decoder_cache.py",
    "keras": "impl_keras/_decoder_cache.py",
}
"""Framework -> the file that holds its decoder."""

CONCEPTS = (
    Concept(
        "decoder-model",
        "A causal self-attention decoder",
        "Every framework has a built-in multi-head attention layer that projects the query, "
        "key and value itself: Linen `nn.MultiHeadDotProductAttention`, NNX "
        "`nnx.MultiHeadAttention` (it needs `in_features`), `hk.MultiHeadAttention` (it needs "
        "`w_init`: Haiku has no default), `eqx.nn.MultiheadAttention` (one sequence per call, "
        "and no biases unless asked: `use_query_bias=True`, ...), `keras.layers."
        "MultiHeadAttention` (`use_causal_mask=True` builds the mask). Their kernels: "
        "Linen, NNX and Keras (in, heads, head_dim), Haiku (in, heads * head_dim), Equinox "
        "(heads * head_dim, in). Flax and Equinox scale the query by 1/sqrt(head_dim), "
        "Haiku the logits; masked logits become float32's minimum (Flax, Equinox), -1e30 "
        "(Haiku) or go through `jax.nn.dot_product_attention` (Keras).",
        FILES,
        topic="caches",
    ),
    Concept(
        "decoder-cache",
        "The key/value cache",
        "Linen and NNX cache inside the layer: Linen's `decode=True` declares `cached_key`, "
        '`cached_value` and `cache_index` in the `"cache"` collection (returned by '
        '`apply(..., mutable=["cache"])`), NNX\'s `init_cache(shape)` makes them `nnx.Cache` '
        "Variables on the layer; both write one token per call and mask the slots not yet "
        "written. Haiku, Equinox and Keras keep no cache: here Haiku holds it as state "
        "(`hk.get_state`/`hk.set_state` in a subclass whose `_linear_projection` is the hook "
        "between projecting and attending), Equinox in an `eqx.nn.StateIndex` of a wrapper "
        "module, threaded as an `eqx.nn.State`, and Keras passes it in and out explicitly "
        "(KerasHub's `CachedMultiHeadAttention` pattern), so that the decode step stays pure "
        "under `stateless_call` and the model's variables stay its weights. In every one the "
        "cache is not training state: it lives for one decode and is never checkpointed.",
        FILES,
        extra={
            "haiku": ("decoder-step",),
            "equinox": ("decoder-step",),
            "keras": ("decoder-step",),
        },
        topic="caches",
    ),
)

GOTCHAS = (
    (
        "Linen sizes its cache from the input given to init",
        "`init` of a `decode=True` Linen attention runs the plain forward pass and declares a "
        "zero cache shaped like that input's keys: init with a full-length input (here with "
        "`jax.eval_shape`, so nothing is computed), then feed one token per `apply`.",
    ),
    (
        "NNX's cache must be made with init_cache",
        "Before `init_cache(input_shape)` the layer's `cached_key`, `cached_value` and "
        "`cache_index` are `None`, and a call with `decode=True` raises; the cache's length is "
        "the shape's sequence axis.",
    ),
    (
        "No causal mask in decode mode",
        "Linen and NNX mask the unwritten cache slots themselves (`arange(length) <= index`); "
        "a causal mask of the one-token input is (1, 1) and does not fit the cache's keys. "
        "Haiku, Equinox and Keras get that slot mask from the caller here.",
    ),
    (
        "Equinox's process_heads cannot grow the keys",
        "`eqx.nn.MultiheadAttention`'s `process_heads` hook sees the projected heads but must "
        "return them in the same shapes, so it cannot hand the attention a cache longer than "
        "the token given; decode uses the layer's public projections and attends as the layer "
        "does.",
    ),
    (
        "Keras's slice_update takes the start before the update",
        "`keras.ops.slice_update(inputs, start_indices, updates)`, unlike "
        "`jax.lax.dynamic_update_slice(operand, update, start_indices)`; and a subclass of "
        "`MultiHeadAttention` must keep a `key` argument in `call`, or `build` fails.",
    ),
    (
        "The key's bias has no gradient, and Adam moves it anyway",
        "A bias on the key projection adds `q . b_k` to every logit of a row, which the "
        "softmax cancels: its true gradient is 0, its computed one rounding noise, which Adam "
        "turns into steps of +-lr that differ per framework (5e-03 apart after one step). "
        "Linen, NNX, Haiku and Keras switch all four projections' biases together "
        "(`use_bias`, `with_bias`), so `decoder-cache` drops them all under Adam; Equinox's "
        "`use_key_bias` alone would do.",
    ),
    (
        "Cached decode is not bitwise the full pass",
        "One query against the cache is another XLA program than the (T, T) attention: the "
        "logits differ by up to 1.5e-07 (2.4e-07 in Equinox) at the same params, in every "
        "framework; greedy tokens are the same.",
    ),
)

DOCS = ModelDocs(CONCEPTS, GOTCHAS)
