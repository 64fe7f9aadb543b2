"""The decoder in Flax NNX: `nnx.MultiHeadAttention`, `init_cache`, `decode=True`.

NNX's attention keeps its key/value cache on the layer, as `nnx.Cache` Variables
(`cached_key`, `cached_value`, `cache_index`): `init_cache(input_shape)` creates them (zero,
the cache as long as the shape's sequence axis) and every call with `decode=True` writes one
token's key and value at `cache_index` and masks the slots not yet written. Before
`init_cache` they are `None`, so a training model holds no cache.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import jax.numpy as jnp
import optax
from flax import nnx
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

from ._canonical import nnx_canonical, nnx_from_canonical
from ._native import nnx_checkpoint

NNXState = nnx.State[Any, Any]
RENAME = {"embed.embedding": "embed.table", "pos.embedding": "pos.table"}
CACHE = {
    "attn.cached_key": "cache.key",
    "attn.cached_value": "cache.value",
    "attn.cache_index": "cache.index",
}


# --8<-- [start:nnx-decoder-model]
class Decoder(nnx.Module):
    """Token and position embeddings, causal self-attention with a residual, a dense head."""

    def __init__(
        self,
        vocab: int,
        length: int,
        d_model: int,
        heads: int,
        *,
        attn_bias: bool = True,
        rngs: nnx.Rngs,
    ):
        self.embed = nnx.Embed(vocab, d_model, rngs=rngs)
        self.pos = nnx.Embed(length, d_model, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            heads, d_model, use_bias=attn_bias, decode=False, rngs=rngs
        )
        self.head = nnx.Linear(d_model, vocab, rngs=rngs)

    def __call__(
        self,
        tokens: Int[Array, "batch time"],
        positions: Int[Array, " time"] | None = None,
        *,
        decode: bool = False,
    ) -> Array:
        if positions is None:
            positions = jnp.arange(tokens.shape[-1])
        x = self.embed(tokens) + self.pos(positions)
        # decode=True: one token, the layer masks the cache slots past its own index.
        mask = None if decode else nnx.make_causal_mask(tokens)
        x = x + self.attn(x, mask=mask, decode=decode)
        return self.head(x)


# --8<-- [end:nnx-decoder-model]


# --8<-- [start:nnx-decoder-train-step]
@nnx.jit
def train_step(model: Decoder, optimizer: nnx.Optimizer[Decoder], batch: Sequences) -> Array:
    def loss_fn(model: Decoder) -> Array:
        return decoder_loss(model(batch.tokens[:, :-1]), batch)  # type: ignore[arg-type]

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return cast(Array, loss)


# --8<-- [end:nnx-decoder-train-step]


class NNXDecoderCache:
    """Adapter from the NNX decoder to the harness protocol (split once, merge per call),
    and its decode steps. The training state is empty: the cache is not trained and not
    checkpointed; a decode's model is merged with an `nnx.Cache` state of its own."""

    name = "flax_nnx"
    model = "decoder-cache"

    def __init__(self, config: DecoderCacheConfig):
        self.config = config
        abstract = nnx.eval_shape(lambda: self.make(nnx.Rngs(0)))
        graphdef, params, state = nnx.split(abstract, nnx.Param, nnx.Cache)  # type: ignore[misc]
        self.graphdef: nnx.GraphDef[Decoder] = graphdef
        self.abstract_params: NNXState = params
        self.abstract_state: NNXState = state

    def make(self, rngs: nnx.Rngs) -> Decoder:
        c = self.config
        return Decoder(c.vocab, c.length, c.d_model, c.heads, attn_bias=c.attn_bias, rngs=rngs)

    def init(self, key: jax.Array, x: Any) -> tuple[NNXState, NNXState]:
        check_tokens(self.name, x, self.config)
        _, params, state = nnx.split(self.make(nnx.Rngs(key)), nnx.Param, nnx.Cache)  # type: ignore[misc]
        return params, state

    def apply(
        self,
        params: NNXState,
        state: NNXState,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, NNXState]:
        check_tokens(self.name, x, self.config)
        model = nnx.merge(self.graphdef, params, state, copy=True)
        model.train() if train else model.eval()  # type: ignore[no-untyped-call]
        return model(x), state

    def to_canonical(self, params: NNXState, state: NNXState) -> tuple[Canonical, Canonical]:
        return nnx_canonical(params, RENAME), {}

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[NNXState, NNXState]:
        check_params(self.name, params, self.config)
        check_state(self.name, state)
        return nnx_from_canonical(self.abstract_params, params, RENAME), self.abstract_state

    # --8<-- [start:nnx-decoder-cache]
    def init_cache(self, batch: int) -> NNXState:
        """A zero `nnx.Cache` state for `batch` sequences (`init_cache` on an abstract model)."""
        shape = (batch, self.config.length, self.config.d_model)  # the cache's length: axis 1

        def cached() -> Decoder:
            model = self.make(nnx.Rngs(0))
            model.attn.init_cache(shape)
            return model

        _, _, cache = nnx.split(nnx.eval_shape(cached), nnx.Param, nnx.Cache)  # type: ignore[misc]
        zeros: NNXState = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype), cache)
        return zeros

    def decode_step(
        self, params: NNXState, cache: NNXState, token: Array, position: Array
    ) -> tuple[Array, NNXState]:
        """One token in, its logits and the updated cache (the model's `nnx.Cache`s) out."""
        graphdef = self._decode_graphdef(cache)
        model = nnx.merge(graphdef, params, cache, copy=True)
        logits = model(token, position[None], decode=True)
        return logits, nnx.state(model, nnx.Cache)

    # --8<-- [end:nnx-decoder-cache]

    def _decode_graphdef(self, cache: NNXState) -> nnx.GraphDef[Decoder]:
        batch = nnx_canonical(cache, CACHE)["cache.key"].shape[0]

        def cached() -> Decoder:
            model = self.make(nnx.Rngs(0))
            model.attn.init_cache((batch, self.config.length, self.config.d_model))
            return model

        graphdef, _, _ = nnx.split(nnx.eval_shape(cached), nnx.Param, nnx.Cache)  # type: ignore[misc]
        return cast(nnx.GraphDef[Decoder], graphdef)

    def cache_canonical(self, params: NNXState, cache: NNXState) -> Canonical:
        return nnx_canonical(cache, CACHE)

    def cache_from_canonical(self, params: NNXState, canonical: Canonical) -> NNXState:
        template = self.init_cache(int(jnp.shape(canonical["cache.key"])[0]))
        return nnx_from_canonical(template, canonical, CACHE)

    def native_loop(
        self, params: NNXState, state: NNXState, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """The model and an `nnx.Optimizer`, updated in place by the jitted `train_step`."""
        model = nnx.merge(self.graphdef, params, state, copy=True)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model.train()  # type: ignore[no-untyped-call]
        return NativeLoop(
            lambda batch: train_step(model, optimizer, batch),
            lambda: (nnx.state(model, nnx.Param), nnx.state(model, nnx.Cache)),
            *nnx_checkpoint(model, optimizer),
        )
