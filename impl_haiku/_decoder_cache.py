"""The decoder in Haiku: `hk.MultiHeadAttention`, its cache held as state (`hk.get_state`).

`hk.MultiHeadAttention` keeps no cache, and it projects keys and values inside its
`__call__`. The subclass here puts the projected key and value heads through a cache held
in Haiku state: its `_linear_projection` (the parent's one hook between projecting and
attending) writes the new heads at the cache's index and hands the whole cache on, and its
`__call__` masks the slots not yet written and advances the index. The parent's attention
itself (its einsums, scaling, mask value and softmax) runs unchanged.
"""

from __future__ import annotations

from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
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

from ._native import HaikuStep, haiku_native_loop

ROOT = "decoder"
ATTN = f"{ROOT}/attn"


# --8<-- [start:haiku-decoder-cache]
class CachedMultiHeadAttention(hk.MultiHeadAttention):
    """`hk.MultiHeadAttention` whose key and value heads go through a cache in Haiku state
    when `cache_length` is set (one query token per call)."""

    def __init__(self, *args: Any, cache_length: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cache_length = cache_length

    def __call__(self, query: Array, key: Array, value: Array, mask: Array | None = None) -> Array:
        if self.cache_length is None:
            return super().__call__(query, key, value, mask)
        index = hk.get_state("index", (), jnp.int32, init=jnp.zeros)
        # The slots written so far, this token's included; shaped as the logits [B, H, 1, T].
        written = (jnp.arange(self.cache_length) <= index)[None, None, None, :]
        out = super().__call__(query, key, value, written if mask is None else mask & written)
        hk.set_state("index", index + 1)
        return out

    @hk.transparent  # as the parent's: the projections stay named attn/query, attn/key, ...
    def _linear_projection(self, x: Array, head_size: int, name: str | None = None) -> Array:
        heads = super()._linear_projection(x, head_size, name)  # [B, T, H, head_size]
        if self.cache_length is None or name not in ("key", "value"):
            return heads
        assert name is not None
        batch, _, num_heads, size = heads.shape
        shape = (batch, self.cache_length, num_heads, size)
        cached = hk.get_state(name, shape, heads.dtype, init=jnp.zeros)  # "key" or "value"
        index = hk.get_state("index", (), jnp.int32, init=jnp.zeros)
        cached = jax.lax.dynamic_update_slice(cached, heads, (0, index, 0, 0))
        hk.set_state(name, cached)  # written before the attention reads it
        return cached


# --8<-- [end:haiku-decoder-cache]


# --8<-- [start:haiku-decoder-model]
class Decoder(hk.Module):
    """Token and position embeddings, causal self-attention with a residual, a dense head."""

    def __init__(self, config: DecoderCacheConfig, decode: bool = False, name: str = ROOT):
        super().__init__(name=name)
        self.config = config
        self.decode = decode

    def __call__(
        self, tokens: Int[Array, "batch time"], positions: Int[Array, " time"] | None = None
    ) -> Array:
        c = self.config
        if positions is None:
            positions = jnp.arange(tokens.shape[-1])
        x = hk.Embed(c.vocab, c.d_model, name="embed")(tokens)
        x = x + hk.Embed(c.length, c.d_model, name="pos")(positions)
        attn = CachedMultiHeadAttention(
            c.heads,
            key_size=c.head_dim,
            model_size=c.d_model,
            with_bias=c.attn_bias,
            w_init=hk.initializers.VarianceScaling(1.0),  # type: ignore[no-untyped-call]  # required: Haiku has no default
            cache_length=c.length if self.decode else None,
            name="attn",
        )
        time = tokens.shape[-1]
        causal = jnp.tril(jnp.ones((time, time), bool))[None, None]  # [1, 1, T, T]
        x = x + attn(x, x, x, mask=None if self.decode else causal)
        return hk.Linear(c.vocab, name="head")(x)


# --8<-- [end:haiku-decoder-model]


def make_forward(config: DecoderCacheConfig, decode: bool = False) -> hk.TransformedWithState:
    """The transformed decoder: `apply(params, state, tokens, positions=None)`."""

    def forward(tokens: Array, positions: Array | None = None) -> Array:
        return Decoder(config, decode)(tokens, positions)

    return hk.without_apply_rng(hk.transform_with_state(forward))


# --8<-- [start:haiku-decoder-train-step]
def make_train_step(
    forward: hk.TransformedWithState, tx: optax.GradientTransformation
) -> HaikuStep:
    @jax.jit
    def train_step(
        params: hk.Params, state: hk.State, opt_state: optax.OptState, batch: Sequences
    ) -> tuple[hk.Params, hk.State, optax.OptState, Array]:
        def loss_fn(params: hk.Params) -> Array:
            logits, _ = forward.apply(params, state, batch.tokens[:, :-1])  # teacher forcing
            return decoder_loss(logits, batch)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss

    return train_step


# --8<-- [end:haiku-decoder-train-step]


class HaikuDecoderCache:
    """Adapter from the Haiku decoder to the harness protocol, and its decode steps.

    Training: the decoder transformed without a cache (its state `{}`). Decoding: the same
    params through the decoder transformed with `decode=True`, whose state is the cache."""

    name = "haiku"
    model = "decoder-cache"

    def __init__(self, config: DecoderCacheConfig):
        self.config = config
        self.forward = make_forward(config)
        self.decoder = make_forward(config, decode=True)

    def init(self, key: jax.Array, x: Any) -> tuple[hk.Params, hk.State]:
        check_tokens(self.name, x, self.config)
        return self.forward.init(key, x)

    def apply(
        self,
        params: hk.Params,
        state: hk.State,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, hk.State]:
        check_tokens(self.name, x, self.config)
        logits, state = self.forward.apply(params, state, x)
        return logits, state

    def to_canonical(self, params: hk.Params, state: hk.State) -> tuple[Canonical, Canonical]:
        c = self.config
        h, k, d = c.heads, c.head_dim, c.d_model
        out = {
            "embed.table": params[f"{ROOT}/embed"]["embeddings"],
            "pos.table": params[f"{ROOT}/pos"]["embeddings"],
        }
        for p in ("query", "key", "value"):  # Haiku's Linear: (d_model, heads * head_dim)
            out[f"attn.{p}.kernel"] = params[f"{ATTN}/{p}"]["w"].reshape(d, h, k)
            if c.attn_bias:
                out[f"attn.{p}.bias"] = params[f"{ATTN}/{p}"]["b"].reshape(h, k)
        out["attn.out.kernel"] = params[f"{ATTN}/linear"]["w"].reshape(h, k, d)
        if c.attn_bias:
            out["attn.out.bias"] = params[f"{ATTN}/linear"]["b"]
        out["head.kernel"] = params[f"{ROOT}/head"]["w"]
        out["head.bias"] = params[f"{ROOT}/head"]["b"]
        return out, {}

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[hk.Params, hk.State]:
        check_params(self.name, params, self.config)
        check_state(self.name, state)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        c = self.config
        hk_ = c.heads * c.head_dim
        native: dict[str, dict[str, Array]] = {
            f"{ROOT}/embed": {"embeddings": p["embed.table"]},
            f"{ROOT}/pos": {"embeddings": p["pos.table"]},
            f"{ATTN}/linear": {"w": p["attn.out.kernel"].reshape(hk_, c.d_model)},
            f"{ROOT}/head": {"w": p["head.kernel"], "b": p["head.bias"]},
        }
        for name in ("query", "key", "value"):
            native[f"{ATTN}/{name}"] = {"w": p[f"attn.{name}.kernel"].reshape(c.d_model, hk_)}
            if c.attn_bias:
                native[f"{ATTN}/{name}"]["b"] = p[f"attn.{name}.bias"].reshape(hk_)
        if c.attn_bias:
            native[f"{ATTN}/linear"]["b"] = p["attn.out.bias"]
        return native, {}

    def init_cache(self, batch: int) -> hk.State:
        """A zero cache: the state `init` of the decode transform creates (shapes only)."""
        token = jnp.zeros((batch, 1), jnp.int32)
        _, state = jax.eval_shape(self.decoder.init, jax.random.key(0), token, jnp.zeros(1, int))
        zeros: hk.State = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype), state)
        return zeros

    # --8<-- [start:haiku-decoder-step]
    def decode_step(
        self, params: hk.Params, cache: hk.State, token: Array, position: Array
    ) -> tuple[Array, hk.State]:
        """One token in; its logits and the new state (the cache) out of `apply`."""
        logits, cache = self.decoder.apply(params, cache, token, position[None])
        return logits, cache

    # --8<-- [end:haiku-decoder-step]

    def cache_canonical(self, params: hk.Params, cache: hk.State) -> Canonical:
        s = cache[ATTN]
        return {"cache.key": s["key"], "cache.value": s["value"], "cache.index": s["index"]}

    def cache_from_canonical(self, params: hk.Params, canonical: Canonical) -> hk.State:
        return {
            ATTN: {
                "key": jnp.asarray(canonical["cache.key"]),
                "value": jnp.asarray(canonical["cache.value"]),
                "index": jnp.asarray(canonical["cache.index"]),
            }
        }

    def native_loop(
        self, params: hk.Params, state: hk.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return haiku_native_loop(make_train_step(self.forward, tx), params, state, tx)
