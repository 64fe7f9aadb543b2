"""The decoder in Equinox: `eqx.nn.MultiheadAttention`, its cache an `eqx.nn.StateIndex`.

`eqx.nn.MultiheadAttention` keeps no cache and projects keys and values inside its
`__call__` (its `process_heads` hook may not change the heads' shapes, so it cannot hand the
attention a longer cache than the one token given). Decoding here uses the layer's own
public projections (`query_proj`, `key_proj`, `value_proj`, `output_proj`), keeps the
projected heads in an `eqx.nn.StateIndex` of a small wrapper module, threaded as an
`eqx.nn.State`, and attends as the layer's own `dot_product_attention` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PyTree

from shared import Canonical, NativeLoop
from shared.models.decoder_cache import (
    DecoderCacheConfig,
    Sequences,
    check_params,
    check_state,
    check_tokens,
    decoder_loss,
)

from ._native import equinox_native_loop


# --8<-- [start:equinox-decoder-model]
class Decoder(eqx.Module):
    """Token and position embeddings, causal self-attention with a residual, a dense head;
    called on one sequence (vmap it over a batch)."""

    embed: eqx.nn.Embedding
    pos: eqx.nn.Embedding
    attn: eqx.nn.MultiheadAttention
    head: eqx.nn.Linear

    def __init__(self, config: DecoderCacheConfig, *, key: jax.Array):
        c = config
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.embed = eqx.nn.Embedding(c.vocab, c.d_model, key=k1)
        self.pos = eqx.nn.Embedding(c.length, c.d_model, key=k2)
        # Equinox's attention has no biases by default; the others' have all four.
        self.attn = eqx.nn.MultiheadAttention(
            c.heads,
            c.d_model,
            use_query_bias=c.attn_bias,
            use_key_bias=c.attn_bias,
            use_value_bias=c.attn_bias,
            use_output_bias=c.attn_bias,
            key=k3,
        )
        self.head = eqx.nn.Linear(c.d_model, c.vocab, key=k4)

    def __call__(self, tokens: Int[Array, " time"]) -> Float[Array, "time vocab"]:
        time = tokens.shape[0]
        x = jax.vmap(self.embed)(tokens) + jax.vmap(self.pos)(jnp.arange(time))
        causal = jnp.tril(jnp.ones((time, time), bool))
        x = x + self.attn(x, x, x, mask=causal)
        return jax.vmap(self.head)(x)


# --8<-- [end:equinox-decoder-model]


def attention(
    query: Float[Array, "q d"],
    key: Float[Array, "k d"],
    value: Float[Array, "k v"],
    mask: Bool[Array, "q k"],
) -> Float[Array, "q v"]:
    """One head's attention, as `eqx.nn.MultiheadAttention` computes it (its module-private
    `dot_product_attention`): the query scaled first, masked logits at float32's minimum."""
    query = query / math.sqrt(query.shape[-1])
    logits = jnp.einsum("sd,Sd->sS", query, key)
    lowest = jnp.finfo(logits.dtype).min  # type: ignore[no-untyped-call]
    logits = jnp.where(mask, logits, lowest)
    weights = jax.nn.softmax(logits.astype(jnp.float32)).astype(logits.dtype)
    return jnp.einsum("sS,Sd->sd", weights, value)


# --8<-- [start:equinox-decoder-cache]
class CachedDecoder(eqx.Module):
    """The decoder and its key/value cache: an `eqx.nn.StateIndex` holding the projected
    heads of a batch, (batch, length, heads, head_dim) each, and the next slot's index."""

    decoder: Decoder
    cache: eqx.nn.StateIndex[tuple[Array, Array, Array]]

    def __init__(self, decoder: Decoder, config: DecoderCacheConfig, batch: int):
        self.decoder = decoder
        shape = (batch, config.length, config.heads, config.head_dim)
        self.cache = eqx.nn.StateIndex((jnp.zeros(shape), jnp.zeros(shape), jnp.int32(0)))

    def __call__(
        self, token: Int[Array, "batch 1"], position: Int[Array, ""], state: eqx.nn.State
    ) -> tuple[Float[Array, "batch 1 vocab"], eqx.nn.State]:
        d = self.decoder
        keys, values, index = state.get(self.cache)
        x = jax.vmap(jax.vmap(d.embed))(token) + d.pos(position)
        logits, keys, values = jax.vmap(self._one, in_axes=(0, 0, 0, None))(x, keys, values, index)
        return logits, state.set(self.cache, (keys, values, index + 1))

    def _one(
        self, x: Float[Array, "1 d"], keys: Array, values: Array, index: Array
    ) -> tuple[Array, Array, Array]:
        """One sequence: write this token's key and value at `index`, then attend."""
        attn = self.decoder.attn

        def heads(proj: eqx.nn.Linear) -> Array:
            return jax.vmap(proj)(x).reshape(1, attn.num_heads, -1)  # as the layer's _project

        keys = jax.lax.dynamic_update_slice(keys, heads(attn.key_proj), (index, 0, 0))
        values = jax.lax.dynamic_update_slice(values, heads(attn.value_proj), (index, 0, 0))
        written = (jnp.arange(keys.shape[0]) <= index)[None, :]  # (1, length)
        one_head = jax.vmap(attention, in_axes=(1, 1, 1, None), out_axes=1)
        out = one_head(heads(attn.query_proj), keys, values, written).reshape(1, -1)
        y = x + jax.vmap(attn.output_proj)(out)
        return jax.vmap(self.decoder.head)(y), keys, values


# --8<-- [end:equinox-decoder-cache]


# --8<-- [start:equinox-decoder-train-step]
@eqx.filter_jit
def train_step(
    model: Decoder,
    state: None,
    opt_state: optax.OptState,
    batch: Sequences,
    tx: optax.GradientTransformation,
) -> tuple[Decoder, None, optax.OptState, Array]:
    def loss_fn(model: Decoder) -> Array:
        logits = jax.vmap(model)(
            jnp.asarray(batch.tokens)[:, :-1]
        )  # teacher forcing, one sequence each
        return decoder_loss(logits, batch)

    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), state, opt_state, loss


# --8<-- [end:equinox-decoder-train-step]


def _proj_leaf(name: str, leaf: str) -> Callable[[Decoder], Array]:
    """`tree_at`'s selector of one projection's weight or bias."""
    return lambda m: getattr(getattr(m.attn, f"{name}_proj"), leaf)


class EquinoxDecoderCache:
    """Adapter from the Equinox decoder to the harness protocol, and its decode steps.

    The params are the decoder's inexact arrays (`eqx.partition`); the training state is
    `None`. A decode makes a `CachedDecoder` with `eqx.nn.make_with_state`: its `State` is
    the cache, not training state (never trained, never checkpointed)."""

    name = "equinox"
    model = "decoder-cache"

    def __init__(self, config: DecoderCacheConfig):
        self.config = config
        # Shapes only (no initializer runs): the static part, and the template of the values.
        self.abstract = eqx.filter_eval_shape(Decoder, config, key=jax.random.key(0))
        _, self.static = eqx.partition(self.abstract, eqx.is_inexact_array)
        self._cached: dict[int, tuple[CachedDecoder, eqx.nn.State]] = {}

    def init(self, key: jax.Array, x: Any) -> tuple[PyTree, None]:
        check_tokens(self.name, x, self.config)
        return eqx.filter(Decoder(self.config, key=key), eqx.is_inexact_array), None

    def apply(
        self, params: PyTree, state: None, x: Any, *, train: bool, key: jax.Array | None = None
    ) -> tuple[Array, None]:
        check_tokens(self.name, x, self.config)
        model = eqx.combine(params, self.static)
        return jax.vmap(model)(jnp.asarray(x)), state

    def to_canonical(self, params: PyTree, state: None) -> tuple[Canonical, Canonical]:
        c = self.config
        d, h, k = c.d_model, c.heads, c.head_dim
        m: Decoder = params
        out = {"embed.table": m.embed.weight, "pos.table": m.pos.weight}
        for name in ("query", "key", "value"):  # Equinox's Linear: weight (out, in)
            proj = getattr(m.attn, f"{name}_proj")
            out[f"attn.{name}.kernel"] = proj.weight.T.reshape(d, h, k)
            if proj.bias is not None:  # use_*_bias=config.attn_bias
                out[f"attn.{name}.bias"] = proj.bias.reshape(h, k)
        out["attn.out.kernel"] = m.attn.output_proj.weight.T.reshape(h, k, d)
        assert m.head.bias is not None
        if m.attn.output_proj.bias is not None:
            out["attn.out.bias"] = m.attn.output_proj.bias
        out["head.kernel"] = m.head.weight.T
        out["head.bias"] = m.head.bias
        return out, {}

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[PyTree, None]:
        check_params(self.name, params, self.config)
        check_state(self.name, state)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        c = self.config
        hk = c.heads * c.head_dim
        model = self.abstract
        leaves = [
            (lambda m: m.embed.weight, p["embed.table"]),
            (lambda m: m.pos.weight, p["pos.table"]),
            (lambda m: m.attn.output_proj.weight, p["attn.out.kernel"].reshape(hk, c.d_model).T),
            (lambda m: m.head.weight, p["head.kernel"].T),
            (lambda m: m.head.bias, p["head.bias"]),
        ]
        for name in ("query", "key", "value"):
            kernel = p[f"attn.{name}.kernel"].reshape(c.d_model, hk).T
            leaves.append((_proj_leaf(name, "weight"), kernel))
            if c.attn_bias:
                leaves.append((_proj_leaf(name, "bias"), p[f"attn.{name}.bias"].reshape(hk)))
        if c.attn_bias:
            leaves.append((lambda m: m.attn.output_proj.bias, p["attn.out.bias"]))
        for where, value in leaves:
            model = eqx.tree_at(where, model, value)
        return eqx.filter(model, eqx.is_inexact_array), None

    def _cached_decoder(self, batch: int) -> CachedDecoder:
        return self._made(batch)[0]

    def _made(self, batch: int) -> tuple[CachedDecoder, eqx.nn.State]:
        """The wrapper and its zero cache for `batch` (one `StateIndex` per batch size)."""
        if batch not in self._cached:
            self._cached[batch] = eqx.nn.make_with_state(CachedDecoder)(
                self.abstract,
                self.config,
                batch,  # the decoder's values come with each step
            )
        return self._cached[batch]

    # --8<-- [start:equinox-decoder-step]
    def init_cache(self, batch: int) -> eqx.nn.State:
        return self._made(batch)[1]  # make_with_state's State: the StateIndex's zeros

    def decode_step(
        self, params: PyTree, cache: eqx.nn.State, token: Array, position: Array
    ) -> tuple[Array, eqx.nn.State]:
        """One token in, its logits and the new `State` out; the decoder's arrays swapped in."""
        decoder = eqx.combine(params, self.static)
        cached = eqx.tree_at(lambda m: m.decoder, self._cached_decoder(token.shape[0]), decoder)
        logits, cache = cached(token, position, cache)
        return logits, cache

    # --8<-- [end:equinox-decoder-step]

    def cache_canonical(self, params: PyTree, cache: eqx.nn.State) -> Canonical:
        keys, values, index = cache.get(self._any_cached(cache).cache)
        return {"cache.key": keys, "cache.value": values, "cache.index": index}

    def cache_from_canonical(self, params: PyTree, canonical: Canonical) -> eqx.nn.State:
        batch = int(jnp.shape(canonical["cache.key"])[0])
        model, fresh = self._made(batch)
        keys, values, index = (
            jnp.asarray(canonical[k]) for k in ("cache.key", "cache.value", "cache.index")
        )
        return fresh.set(model.cache, (keys, values, index))

    def _any_cached(self, cache: eqx.nn.State) -> CachedDecoder:
        leaves = jax.tree.leaves(cache)
        batch = next(leaf.shape[0] for leaf in leaves if jnp.ndim(leaf) == 4)
        return self._cached_decoder(batch)

    def native_loop(
        self, params: PyTree, state: None, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return equinox_native_loop(train_step, eqx.combine(params, self.static), state, tx)
