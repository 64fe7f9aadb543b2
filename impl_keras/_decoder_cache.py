"""The decoder in Keras: `keras.layers.MultiHeadAttention`, its cache passed explicitly.

`keras.layers.MultiHeadAttention` keeps no cache, and it projects keys and values inside
its `call`. The subclass here is KerasHub's `CachedMultiHeadAttention` pattern: `call` takes
the cache, a (batch, 2, length, heads, head_dim) stack of projected keys and values, and the
slot to write, projects the one new token with the layer's own `_key_dense` and
`_value_dense`, writes it with `ops.slice_update`, attends with the layer's own
`_compute_attention` and returns the output with the new cache. The cache is an argument
and a result, not a Keras variable: a decode step stays a pure function of its inputs under
`stateless_call`, and the model's variables stay its trainable weights alone.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import keras
import optax
from jaxtyping import Array, Int

from shared import Canonical, NativeLoop
from shared.models.decoder_cache import (
    DecoderCacheConfig,
    Sequences,
    check_params,
    check_state,
    check_tokens,
    decoder_loss,
)

from ._adapter import values
from ._canonical import keras_canonical, keras_from_canonical
from ._native import keras_native_loop

RENAME = {
    "embed.embeddings": "embed.table",
    "pos.embeddings": "pos.table",
    "attn.attention_output.kernel": "attn.out.kernel",
}
BIAS_RENAME = {**RENAME, "attn.attention_output.bias": "attn.out.bias"}


# --8<-- [start:keras-decoder-cache]
class CachedMultiHeadAttention(keras.layers.MultiHeadAttention):
    """`MultiHeadAttention` with an explicit key/value cache (KerasHub's pattern)."""

    def call(
        self,
        query: Array,
        value: Array,
        key: Array | None = None,  # build() needs every argument of the parent's
        attention_mask: Array | None = None,
        cache: Array | None = None,
        cache_update_index: Array | None = None,
        use_causal_mask: bool = False,
        training: bool | None = None,
    ) -> Array | tuple[Array, Array]:
        if cache is None:  # the whole sequence: the parent's own call
            return super().call(
                query, value, key, attention_mask=attention_mask, use_causal_mask=use_causal_mask
            )
        key = value if key is None else key
        start = [0, cache_update_index, 0, 0]
        keys = keras.ops.slice_update(cache[:, 0], start, self._key_dense(key))
        values_ = keras.ops.slice_update(cache[:, 1], start, self._value_dense(value))
        out, _ = self._compute_attention(
            self._query_dense(query), keys, values_, attention_mask, training
        )
        return self._output_dense(out), keras.ops.stack((keys, values_), axis=1)


# --8<-- [end:keras-decoder-cache]


# --8<-- [start:keras-decoder-model]
class Decoder(keras.Model):
    """Token and position embeddings, causal self-attention with a residual, a dense head."""

    def __init__(self, config: DecoderCacheConfig, **kwargs: Any):
        super().__init__(**kwargs)
        c = config
        self.embed = keras.layers.Embedding(c.vocab, c.d_model, name="embed")
        self.pos = keras.layers.Embedding(c.length, c.d_model, name="pos")
        self.attn = CachedMultiHeadAttention(c.heads, c.head_dim, use_bias=c.attn_bias, name="attn")
        self.head = keras.layers.Dense(c.vocab, name="head")

    def call(
        self,
        tokens: Int[Array, "batch time"],
        positions: Array | None = None,
        cache: Array | None = None,
        training: bool = False,
    ) -> Array | tuple[Array, Array]:
        """Whole sequences (causal); with `cache`, one token at `positions` (its one slot)."""
        if positions is None:
            positions = keras.ops.arange(tokens.shape[-1])
        x = self.embed(tokens) + self.pos(positions)
        if cache is None:
            return self.head(x + self.attn(x, x, use_causal_mask=True))
        index = positions[0]
        written = keras.ops.arange(cache.shape[2]) <= index  # the slots up to this token's
        mask = keras.ops.broadcast_to(written[None, None, :], (tokens.shape[0], 1, cache.shape[2]))
        y, cache = self.attn(x, x, attention_mask=mask, cache=cache, cache_update_index=index)
        return self.head(x + y), cache

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Array:
        return decoder_loss(y_pred, Sequences(y))  # optax's cross-entropy, as everywhere


# --8<-- [end:keras-decoder-model]


class KerasDecoderCache:
    """Adapter from the Keras decoder to the harness protocol (`stateless_call`), and its
    decode steps. The params are the trainable values; the model has no other variables,
    so the state is `[]`. The cache is `{"kv": stack, "index": int32}`: explicit, never a
    variable, never checkpointed."""

    name = "keras"
    model = "decoder-cache"

    def __init__(self, config: DecoderCacheConfig):
        self.config = config
        self.layer = self.make()
        self.rename = BIAS_RENAME if config.attn_bias else RENAME

    def make(self) -> Decoder:
        model = Decoder(self.config, name="decoder")
        model(keras.ops.zeros((1, self.config.length), "int32"))  # builds the sublayers
        return model

    def init(self, key: jax.Array, x: Any) -> tuple[list[Array], list[Array]]:
        check_tokens(self.name, x, self.config)
        layer = self.make()  # Keras's own initializers, from its global seed
        return values(layer.trainable_variables), values(layer.non_trainable_variables)

    def apply(
        self,
        params: list[Array],
        state: list[Array],
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, list[Array]]:
        check_tokens(self.name, x, self.config)
        y, _ = self.layer.stateless_call(params, state, x, training=train)
        return y, state

    def to_canonical(self, params: list[Array], state: list[Array]) -> tuple[Canonical, Canonical]:
        return keras_canonical(self.layer.trainable_variables, params, self.rename), {}

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[list[Array], list[Array]]:
        check_params(self.name, params, self.config)
        check_state(self.name, state)
        return keras_from_canonical(self.layer.trainable_variables, params, self.rename), []

    def init_cache(self, batch: int) -> dict[str, Array]:
        c = self.config
        kv = jnp.zeros((batch, 2, c.length, c.heads, c.head_dim), jnp.float32)
        return {"kv": kv, "index": jnp.int32(0)}

    # --8<-- [start:keras-decoder-step]
    def decode_step(
        self, params: list[Array], cache: dict[str, Array], token: Array, position: Array
    ) -> tuple[Array, dict[str, Array]]:
        """One token in (at the cache's index); its logits and the new cache out."""
        (logits, kv), _ = self.layer.stateless_call(
            params, [], token, positions=cache["index"][None], cache=cache["kv"]
        )
        return logits, {"kv": kv, "index": cache["index"] + 1}

    # --8<-- [end:keras-decoder-step]

    def cache_canonical(self, params: list[Array], cache: dict[str, Array]) -> Canonical:
        kv = cache["kv"]
        return {"cache.key": kv[:, 0], "cache.value": kv[:, 1], "cache.index": cache["index"]}

    def cache_from_canonical(self, params: list[Array], canonical: Canonical) -> dict[str, Array]:
        kv = jnp.stack(
            [jnp.asarray(canonical["cache.key"]), jnp.asarray(canonical["cache.value"])], 1
        )
        return {"kv": kv, "index": jnp.asarray(canonical["cache.index"], jnp.int32)}

    def native_loop(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> NativeLoop:
        """Keras's loop: `compile` with Keras's optimizer, `train_on_batch(inputs, tokens)`."""

        def train_on_batch(model: Decoder, batch: Sequences) -> float:
            return model.train_on_batch(batch.tokens[:, :-1], batch.tokens)

        return keras_native_loop(self.name, self.make(), params, state, tx, train_on_batch)
