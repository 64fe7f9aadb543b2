"""The decoder in Flax Linen: `nn.MultiHeadDotProductAttention(decode=True)`, `mutable=["cache"]`.

Linen's attention keeps its own key/value cache: built with `decode=True`, the layer
declares `cached_key`, `cached_value` and `cache_index` in the `"cache"` collection. `init`
with a full-length input sizes the cache (it runs the plain forward pass and leaves the cache
zero); every later call takes one token, writes its key and value at `cache_index`, masks
the slots not yet written, and returns the updated collection when `"cache"` is mutable.
"""

from __future__ import annotations

from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state
from flax.typing import Collection, VariableDict
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

from ._canonical import linen_canonical, linen_from_canonical

RENAME = {"embed.embedding": "embed.table", "pos.embedding": "pos.table"}
CACHE = {"cached_key": "cache.key", "cached_value": "cache.value", "cache_index": "cache.index"}


# --8<-- [start:linen-decoder-model]
class Decoder(nn.Module):
    """Token and position embeddings, causal self-attention with a residual, a dense head."""

    vocab: int
    length: int
    d_model: int
    heads: int
    attn_bias: bool = True
    decode: bool = False  # one token per call, through the attention's cache

    @nn.compact
    def __call__(
        self, tokens: Int[Array, "batch time"], positions: Int[Array, " time"] | None = None
    ) -> Array:
        if positions is None:
            positions = jnp.arange(tokens.shape[-1])
        x = nn.Embed(self.vocab, self.d_model, name="embed")(tokens)
        x = x + nn.Embed(self.length, self.d_model, name="pos")(positions)
        # In decode mode the layer masks the cache slots past its own index; a causal mask
        # of the one-token input would be (1, 1), the wrong shape for the cache's keys.
        mask = None if self.decode else nn.make_causal_mask(tokens)
        attn = nn.MultiHeadDotProductAttention(
            self.heads, use_bias=self.attn_bias, decode=self.decode, name="attn"
        )
        x = x + attn(x, mask=mask)
        return nn.Dense(self.vocab, name="head")(x)


# --8<-- [end:linen-decoder-model]


# --8<-- [start:linen-decoder-cache]
def init_cache(model: Decoder, batch: int) -> VariableDict:
    """A zero cache for `batch` sequences: `init` sized by a full-length input (the cache's
    length is the input's), the `"cache"` collection kept and the params dropped."""
    tokens = jnp.zeros((batch, model.length), jnp.int32)
    variables = jax.eval_shape(model.init, jax.random.key(0), tokens)
    zeros: VariableDict = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype), variables["cache"])
    return zeros


def decode_step(
    model: Decoder, params: Collection, cache: VariableDict, token: Array, position: Array
) -> tuple[Array, VariableDict]:
    """One token in, its logits and the updated cache out (`mutable=["cache"]`)."""
    logits, updates = model.apply(
        {"params": params, "cache": cache}, token, position[None], mutable=["cache"]
    )
    return logits, updates["cache"]


# --8<-- [end:linen-decoder-cache]


# --8<-- [start:linen-decoder-train-step]
@jax.jit
def train_step(
    state: train_state.TrainState, batch: Sequences
) -> tuple[train_state.TrainState, Array]:
    def loss_fn(params: Collection) -> Array:
        logits = state.apply_fn({"params": params}, batch.tokens[:, :-1])  # teacher forcing
        return decoder_loss(logits, batch)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


# --8<-- [end:linen-decoder-train-step]


class LinenDecoderCache:
    """Adapter from the Linen decoder to the harness protocol, and its decode steps.

    The training state is `{}`: the cache is not trained and not checkpointed, it lives for
    one decode (`init_cache`, `decode_step`)."""

    name = "flax_linen"
    model = "decoder-cache"

    def __init__(self, config: DecoderCacheConfig):
        self.config = config
        c = config
        self.module = Decoder(c.vocab, c.length, c.d_model, c.heads, c.attn_bias)
        self.decoder = Decoder(c.vocab, c.length, c.d_model, c.heads, c.attn_bias, decode=True)

    def init(self, key: jax.Array, x: Any) -> tuple[Collection, VariableDict]:
        check_tokens(self.name, x, self.config)
        return self.module.init(key, x)["params"], {}

    def apply(
        self,
        params: Collection,
        state: VariableDict,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, VariableDict]:
        check_tokens(self.name, x, self.config)
        return cast(Array, self.module.apply({"params": params}, x)), state

    def to_canonical(self, params: Collection, state: VariableDict) -> tuple[Canonical, Canonical]:
        return linen_canonical(params, RENAME), {}

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[Collection, VariableDict]:
        check_params(self.name, params, self.config)
        check_state(self.name, state)
        tokens = jnp.zeros((1, self.config.length), jnp.int32)
        template = jax.eval_shape(self.module.init, jax.random.key(0), tokens)["params"]
        return linen_from_canonical(template, params, RENAME), {}

    def init_cache(self, batch: int) -> VariableDict:
        return init_cache(self.decoder, batch)

    def decode_step(
        self, params: Collection, cache: VariableDict, token: Array, position: Array
    ) -> tuple[Array, VariableDict]:
        return decode_step(self.decoder, params, cache, token, position)

    def cache_canonical(self, params: Collection, cache: VariableDict) -> Canonical:
        return {CACHE[k]: v for k, v in cache["attn"].items()}

    def cache_from_canonical(self, params: Collection, canonical: Canonical) -> VariableDict:
        return {"attn": {k: jnp.asarray(canonical[v]) for k, v in CACHE.items()}}

    def native_loop(
        self, params: Collection, state: VariableDict, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """Flax's plain `TrainState` through the jitted `train_step` (no other state)."""
        ts = train_state.TrainState.create(apply_fn=self.module.apply, params=params, tx=tx)

        def step(batch: Sequences) -> Array:
            nonlocal ts
            ts, loss = train_step(ts, batch)
            return cast(Array, loss)

        def restore(restored: train_state.TrainState) -> None:
            nonlocal ts
            ts = restored

        return NativeLoop(step, lambda: (ts.params, {}), lambda: ts, restore)
