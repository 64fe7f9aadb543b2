"""The `decoder-cache` model's shared pieces: config, canonical names and init, data, loss.

The model is a one-layer causal self-attention decoder: token embedding plus a learned
position embedding, multi-head causal self-attention with a residual, and a dense head over
the vocabulary. The task is reversing digits: `[BOS, d1..dn, SEP, dn..d1]`. Training is
teacher-forced (the full causal forward pass, cross-entropy on the reversed half); decoding
runs one token at a time through each framework's key/value cache. Everything here is
framework-free: the frameworks import it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

MODEL = "decoder-cache"

DIGITS = 10
BOS, SEP = DIGITS, DIGITS + 1
"""Tokens 0-9 are digits; 10 starts a sequence, 11 separates the digits from their reversal."""

CANONICAL_PARAMS = (
    "embed.table",
    "pos.table",
    "attn.query.kernel",
    "attn.query.bias",
    "attn.key.kernel",
    "attn.key.bias",
    "attn.value.kernel",
    "attn.value.bias",
    "attn.out.kernel",
    "attn.out.bias",
    "head.kernel",
    "head.bias",
)
"""Canonical parameter names. Tables are (rows, d_model); the attention projections are
laid out as Flax's and Keras's `DenseGeneral`/`EinsumDense` keep them: query, key and value
kernels (d_model, heads, head_dim), their biases (heads, head_dim), the output kernel
(heads, head_dim, d_model); the head's kernel is (d_model, vocab), as `x @ kernel`."""

CANONICAL_CACHE = ("cache.key", "cache.value", "cache.index")
"""Canonical cache entries: the projected keys and values, (batch, length, heads, head_dim),
and the number of tokens written so far, a scalar int32. Not training state: a cache lives
for one decode and is never checkpointed."""


@dataclass(frozen=True)
class DecoderCacheConfig:
    """Hyperparameters of the decoder, shared by every framework.

    **Arguments:**

    - `digits`: n, the digits per sequence; the model sees `2n + 1` tokens.
    - `d_model`: the embedding width.
    - `heads`: attention heads; `d_model` must be a multiple.
    - `vocab`: tokens (10 digits, BOS, SEP).
    - `attn_bias`: biases on the attention's four projections (every framework's switch is
      one for all four but Equinox's). The key's bias has a true gradient of 0 (it adds
      `q . b_k`, the same to every logit of a row, which the softmax cancels): Adam turns
      the rounding noise of the computed one into steps of +-lr, so drop them for Adam.
    """

    digits: int = 5
    d_model: int = 32
    heads: int = 2
    vocab: int = DIGITS + 2
    attn_bias: bool = True

    def __post_init__(self) -> None:
        for name in ("digits", "d_model", "heads", "vocab"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"decoder-cache: {name} must be an int >= 1, got {value!r}")
        if self.d_model % self.heads:
            raise ValueError(
                f"decoder-cache: d_model ({self.d_model}) must be a multiple of heads "
                f"({self.heads})"
            )
        if self.vocab < DIGITS + 2:
            raise ValueError(f"decoder-cache: vocab must be >= {DIGITS + 2}, got {self.vocab}")

    @property
    def length(self) -> int:
        """Tokens the model sees (and the cache holds): BOS, n digits, SEP, n - 1 outputs."""
        return 2 * self.digits + 1

    @property
    def prompt(self) -> int:
        """Tokens given before the first prediction that counts: BOS, the digits, SEP."""
        return self.digits + 2

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical shapes of the params."""
        d, h, k, v, t = self.d_model, self.heads, self.head_dim, self.vocab, self.length
        proj = {
            f"attn.{p}.{leaf}": shape
            for p in ("query", "key", "value")
            for leaf, shape in (("kernel", (d, h, k)), ("bias", (h, k)))
        }
        shapes: dict[str, tuple[int, ...]] = {
            "embed.table": (v, d),
            "pos.table": (t, d),
            **proj,
            "attn.out.kernel": (h, k, d),
            "attn.out.bias": (d,),
            "head.kernel": (d, v),
            "head.bias": (v,),
        }
        if not self.attn_bias:
            shapes = {k: s for k, s in shapes.items() if not _attn_bias(k)}
        return shapes


def _attn_bias(name: str) -> bool:
    return name.startswith("attn.") and name.endswith(".bias")


def canonical_init(config: DecoderCacheConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """One deterministic float32 init, loaded into every framework with `from_canonical`.

    From NumPy's generator (so that it does not move with the JAX version): embeddings
    normal with standard deviation 1/sqrt(d_model) (so that the summed embedding has unit
    scale per unit), LeCun-normal kernels (1/sqrt(fan_in); the output projection's fan-in
    is heads * head_dim), zero biases.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in config.shapes().items():
        if name.endswith(".bias"):
            out[name] = np.zeros(shape)
        elif name.endswith(".table"):
            out[name] = rng.standard_normal(shape) / np.sqrt(config.d_model)
        elif name == "attn.out.kernel":
            out[name] = rng.standard_normal(shape) / np.sqrt(shape[0] * shape[1])
        else:
            out[name] = rng.standard_normal(shape) / np.sqrt(shape[0])
    return {k: v.astype(np.float32) for k, v in out.items()}


def check_params(where: str, params: Mapping[str, object], config: DecoderCacheConfig) -> None:
    """Check canonical params: every entry present, none extra, each with its shape."""
    expected = config.shapes()
    for key, shape in expected.items():
        if key not in params:
            raise ValueError(f"{where}: canonical params entry {key!r} is missing")
        got = tuple(np.shape(np.asarray(params[key])))
        if got != shape:
            raise ValueError(
                f"{where}: canonical params entry {key!r} has shape {got}; expected {shape}"
            )
    extra = sorted(set(params) - set(expected))
    if extra:
        raise ValueError(f"{where}: unexpected canonical params entry {extra[0]!r}")


def check_state(where: str, state: Mapping[str, object]) -> None:
    """The decoder keeps no training state: its cache is not state (see `CANONICAL_CACHE`)."""
    if state:
        raise ValueError(
            f"{where}: decoder-cache keeps no training state (its cache lives for one decode); "
            f"unexpected canonical state entry {sorted(state)[0]!r}"
        )


def check_tokens(where: str, tokens: object, config: DecoderCacheConfig) -> None:
    """Check the model's input: integer tokens shaped (batch, length) (tracers too)."""
    shape = tuple(getattr(tokens, "shape", None) or np.shape(np.asarray(tokens)))
    dtype = getattr(tokens, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{where}: tokens must have an integer dtype, got {dtype}")
    if len(shape) != 2 or shape[1] != config.length or shape[0] < 1:
        raise ValueError(
            f"{where}: tokens must be shaped (batch, {config.length}), got shape {shape}"
        )


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Sequences:
    """Whole sequences `[BOS, d1..dn, SEP, dn..d1]`: one batch, or one per step on axis 0.

    A pytree (so `lax.scan` slices it per step) and a sequence over its leading axis (so the
    per-step loops iterate over it).
    """

    tokens: Int[Array, "*steps batch total"] | Int[np.ndarray, "*steps batch total"]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def __getitem__(self, index: int) -> Sequences:
        return Sequences(self.tokens[index])

    def __iter__(self) -> Iterator[Sequences]:
        for s in range(len(self)):
            yield self[s]


def reversal(digits: np.ndarray) -> np.ndarray:
    """`[BOS, d1..dn, SEP, dn..d1]` for each row of digits (rows, n)."""
    rows = digits.shape[0]
    bos = np.full((rows, 1), BOS, np.int32)
    sep = np.full((rows, 1), SEP, np.int32)
    return np.concatenate([bos, digits, sep, digits[:, ::-1]], axis=1).astype(np.int32)


def make_sequences(config: DecoderCacheConfig, rows: int, seed: int) -> np.ndarray:
    """`rows` random reversal sequences from NumPy's generator, (rows, 2n + 2)."""
    rng = np.random.default_rng(seed)
    return reversal(rng.integers(0, DIGITS, (rows, config.digits)))


def decoder_inputs(batch: Sequences) -> jax.Array | np.ndarray:
    """What the model sees: every token but the last (teacher forcing)."""
    return batch.tokens[..., :-1]


def decoder_loss(logits: Float[Array, "batch length vocab"], batch: Sequences) -> jax.Array:
    """Mean cross-entropy of the predictions of the reversed half (the last n tokens).

    The logits at position p predict token p + 1; the reversed digits are tokens n + 2 ...
    2n + 1, predicted at positions n + 1 ... 2n.
    """
    n = batch.tokens.shape[-1] // 2 - 1
    targets = jnp.asarray(batch.tokens)[..., n + 2 :]
    losses = optax.softmax_cross_entropy_with_integer_labels(logits[..., n + 1 :, :], targets)
    return cast(jax.Array, losses.mean())
