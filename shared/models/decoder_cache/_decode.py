"""Decoding one token at a time through an implementation's cache, and where two decodes part.

Every implementation of `decoder-cache` has, besides the harness protocol, three decode
methods: `init_cache(batch)`, a zero cache; `decode_step(params, cache, token, position)`,
one token's logits and the updated cache (pure: `jax.jit` compiles it once); and
`cache_canonical(params, cache)`, the cache under the canonical names of
[`CANONICAL_CACHE`][] (`cache_from_canonical` is its inverse).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from shared.core import Canonical, Tolerance

from ._config import CANONICAL_CACHE, DecoderCacheConfig


class Decoding(Protocol):
    """What the decode driver calls on an implementation."""

    name: str
    config: DecoderCacheConfig

    def init_cache(self, batch: int) -> Any: ...

    def decode_step(
        self, params: Any, cache: Any, token: Any, position: Any
    ) -> tuple[Any, Any]: ...

    def cache_canonical(self, params: Any, cache: Any) -> Canonical: ...

    def cache_from_canonical(self, params: Any, canonical: Canonical) -> Any: ...


@dataclass(frozen=True)
class Decoded:
    """One decode: each token's logits, the tokens fed, the canonical cache after each token.

    **Fields:**

    - `logits`: (batch, length, vocab), row t from the call that fed token t.
    - `tokens`: (batch, length), what was fed (the prompt, then greedy predictions).
    - `caches`: one canonical cache per token fed, as NumPy arrays.
    """

    logits: np.ndarray
    tokens: np.ndarray
    caches: list[dict[str, np.ndarray]]


StepFn = Callable[[Any, Any, Any, Any], tuple[Any, Any]]


def decode(
    impl: Decoding,
    params: Any,
    tokens: Any,
    *,
    greedy: bool,
    step: StepFn | None = None,
) -> Decoded:
    """Feed `tokens` (batch, length) one at a time through `impl`'s cache.

    `greedy`: from the first prediction that counts on (position n + 1, after SEP), feed the
    argmax of the previous logits instead of the given token (the prompt is BOS, the digits
    and SEP). Teacher-forced otherwise: the logits must equal the full causal forward pass's.
    `step`: the jitted `decode_step` to use (default: `jax.jit(impl.decode_step)`).
    """
    config = impl.config
    tokens = np.asarray(tokens, np.int32)
    batch, length = tokens.shape
    step = jax.jit(impl.decode_step) if step is None else step
    cache = impl.init_cache(batch)
    fed = tokens.copy()
    logits: list[np.ndarray] = []
    caches: list[dict[str, np.ndarray]] = []
    for t in range(length):
        if greedy and t >= config.prompt:
            fed[:, t] = np.argmax(logits[-1][:, 0], axis=-1)
        out, cache = step(params, cache, jnp.asarray(fed[:, t : t + 1]), jnp.int32(t))
        logits.append(np.asarray(out))
        caches.append({k: np.asarray(v) for k, v in impl.cache_canonical(params, cache).items()})
    return Decoded(np.concatenate(logits, axis=1), fed, caches)


def predictions(config: DecoderCacheConfig, decoded: Decoded) -> np.ndarray:
    """The decoded reversal: the argmax at positions n + 1 ... 2n, (batch, n)."""
    return np.asarray(np.argmax(decoded.logits[:, config.digits + 1 :], axis=-1))


def sequence_accuracy(config: DecoderCacheConfig, decoded: Decoded, sequences: Any) -> float:
    """Element accuracy of the greedy reversal against the held-out sequences' own."""
    target = np.asarray(sequences)[:, config.digits + 2 :]
    return float(np.mean(predictions(config, decoded) == target))


@dataclass(frozen=True)
class Divergence:
    """Where a decode first parts from the reference's: the token fed, the leaf (a cache
    entry, or `"logits"`), the cache slot (or position) and the largest difference there."""

    token: int
    leaf: str
    slots: tuple[int, ...]
    largest: float

    def describe(self) -> str:
        where = f"slot {self.slots[0]}" if len(self.slots) == 1 else f"slots {list(self.slots)}"
        return (
            f"token {self.token}: {self.leaf} differs first, at {where} "
            f"(largest difference {self.largest:.3g})"
        )


def first_divergence(
    reference: Decoded, other: Decoded, tolerance: Tolerance, logits: Tolerance | None = None
) -> Divergence | None:
    """The first token after which `other`'s cache or logits leave `reference`'s.

    Token by token: the cache entries in canonical order (key, value, index), then that
    token's logits. A cache entry names the slots (positions along the cache's length) where
    it differs; the logits name the token's position. `None`: they agree throughout.
    """
    logits = tolerance if logits is None else logits
    for t, (ref, got) in enumerate(zip(reference.caches, other.caches, strict=True)):
        for leaf in CANONICAL_CACHE:
            a, b = got[leaf], ref[leaf]
            bad = ~tolerance.agrees(a, b)
            if bad.any():
                slots = _slots(leaf, bad)
                return Divergence(t, leaf, slots, _largest(a, b))
        a, b = other.logits[:, t], reference.logits[:, t]
        if (~logits.agrees(a, b)).any():
            return Divergence(t, "logits", (t,), _largest(a, b))
    return None


def largest_differences(reference: Decoded, other: Decoded) -> dict[str, float]:
    """The largest |difference| of each cache leaf over every token, and of the logits."""
    out = {
        leaf: max(
            _largest(got[leaf], ref[leaf])
            for ref, got in zip(reference.caches, other.caches, strict=True)
        )
        for leaf in CANONICAL_CACHE
    }
    out["logits"] = _largest(other.logits, reference.logits)
    return out


def _slots(leaf: str, bad: np.ndarray) -> tuple[int, ...]:
    if leaf == "cache.index":
        return (0,)
    return tuple(int(s) for s in np.flatnonzero(bad.any(axis=(0, 2, 3))))


def _largest(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.float64(a) - np.float64(b)), initial=0.0))


def decodes(
    impls: Sequence[Decoding], params: Sequence[Any], tokens: Any, *, greedy: bool
) -> list[Decoded]:
    """`decode` for each implementation with its own native params."""
    return [decode(i, p, tokens, greedy=greedy) for i, p in zip(impls, params, strict=True)]
