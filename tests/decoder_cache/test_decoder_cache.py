"""decoder-cache: each framework's cached decode against its own full causal forward pass,
the frameworks' caches against each other, a planted cache bug located, and (slow) the
whole comparison with its greedy accuracies."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shared
from impl_haiku import _decoder_cache as haiku_decoder
from impl_haiku._decoder_cache import CachedMultiHeadAttention
from shared.models import decoder_cache as dc

FRAMEWORKS = ("flax_linen", "flax_nnx", "haiku", "equinox", "keras")
TINY = dc.DecoderCacheConfig(digits=2, d_model=8, heads=2)  # 5 tokens, head_dim 4


@functools.cache
def built(name: str) -> tuple[Any, Any, Any]:
    """The implementation at the tiny size, its canonical init and its (empty) state."""
    impl = shared.make(name, TINY, model=dc.MODEL)
    params = {k: jnp.asarray(v) for k, v in dc.canonical_init(TINY, seed=1).items()}
    native, state = impl.from_canonical(params, {})
    return impl, native, state


@functools.cache
def prompts() -> np.ndarray:
    return dc.make_sequences(TINY, 4, seed=2)[:, :-1]


@functools.cache
def decoded(name: str) -> dc.Decoded:
    impl, params, _ = built(name)
    return dc.decode(impl, params, prompts(), greedy=False)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_cached_decode_equals_the_full_causal_forward_pass(name: str) -> None:
    """Teacher-forced, one token at a time through the cache: the same logits as the whole
    sequence at once under the causal mask (within DECODE: other programs, same maths)."""
    impl, params, state = built(name)
    forward = jax.jit(lambda p, s, x: impl.apply(p, s, x, train=False)[0])  # one compile
    full = forward(params, state, jnp.asarray(prompts()))
    got = decoded(name)
    assert got.logits.shape == np.shape(full)
    assert dc.DECODE.agrees(got.logits, np.asarray(full)).all()
    # The cache after the last token: every slot written, the index at the length.
    last = got.caches[-1]
    assert last["cache.key"].shape == (4, TINY.length, TINY.heads, TINY.head_dim)
    assert int(last["cache.index"]) == TINY.length
    assert np.all(np.abs(last["cache.key"]).sum(axis=(2, 3)) > 0)


@pytest.mark.parametrize("name", FRAMEWORKS[1:])
def test_caches_agree_with_linen_token_by_token(name: str) -> None:
    """Every framework's canonical cache after each token against Linen's."""
    assert dc.first_divergence(decoded("flax_linen"), decoded(name), dc.CACHE, dc.LOGITS) is None


class OffByOne:
    """A planted bug: the cache's index one ahead before every step (the write lands one
    slot late and the mask lets in an unwritten slot)."""

    def __init__(self, impl: Any):
        self.impl, self.name, self.config = impl, f"{impl.name}+off-by-one", impl.config

    def init_cache(self, batch: int) -> Any:
        return self.impl.init_cache(batch)

    def decode_step(self, params: Any, cache: Any, token: Any, position: Any) -> Any:
        c = dict(self.impl.cache_canonical(params, cache))
        c["cache.index"] = c["cache.index"] + 1
        logits, cache = self.impl.decode_step(
            params, self.impl.cache_from_canonical(params, c), token, position
        )
        c = dict(self.impl.cache_canonical(params, cache))
        c["cache.index"] = c["cache.index"] - 1  # the index itself counts as before
        return logits, self.impl.cache_from_canonical(params, c)

    def cache_canonical(self, params: Any, cache: Any) -> Any:
        return self.impl.cache_canonical(params, cache)

    def cache_from_canonical(self, params: Any, canonical: Any) -> Any:
        return self.impl.cache_from_canonical(params, canonical)


def test_planted_off_by_one_found_at_token_0_in_the_key_cache() -> None:
    """Token 0 is written to slot 1 instead of 0: the comparison names token 0, the key
    cache and slots 0 (left empty) and 1 (written early)."""
    impl, params, _ = built("haiku")
    buggy = dc.decode(OffByOne(impl), params, prompts(), greedy=False)
    where = dc.first_divergence(decoded("flax_linen"), buggy, dc.CACHE, dc.LOGITS)
    assert where is not None
    assert (where.token, where.leaf, where.slots) == (0, "cache.key", (0, 1))
    assert "token 0" in where.describe() and "cache.key" in where.describe()


class StaleRead(CachedMultiHeadAttention):
    """A planted bug in Haiku's cache: the attention reads the cache as it was before this
    token's key and value were written (the write itself is right)."""

    @hk.transparent
    def _linear_projection(self, x: Any, head_size: int, name: str | None = None) -> Any:
        if self.cache_length is None or name not in ("key", "value"):
            return super()._linear_projection(x, head_size, name)
        assert name is not None
        heads = hk.Linear(
            self.num_heads * head_size,
            w_init=self.w_init,
            with_bias=self.with_bias,
            b_init=self.b_init,
            name=name,
        )(x).reshape((*x.shape[:-1], self.num_heads, head_size))
        shape = (heads.shape[0], self.cache_length, self.num_heads, head_size)
        stale = hk.get_state(name, shape, heads.dtype, init=jnp.zeros)
        index = hk.get_state("index", (), jnp.int32, init=jnp.zeros)
        hk.set_state(name, jax.lax.dynamic_update_slice(stale, heads, (0, index, 0, 0)))
        return stale  # the bug: read before the write


def test_a_planted_stale_cache_read_is_found_in_the_logits_of_token_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every cache right, the read wrong: the caches agree with Linen's, and the
    comparison names token 0 (whose own key was not yet visible) and the logits."""
    monkeypatch.setattr(haiku_decoder, "CachedMultiHeadAttention", StaleRead)
    impl = haiku_decoder.HaikuDecoderCache(TINY)
    _, params, _ = built("haiku")
    buggy = dc.decode(impl, params, prompts(), greedy=False)
    where = dc.first_divergence(decoded("flax_linen"), buggy, dc.CACHE, dc.LOGITS)
    assert where is not None
    assert (where.token, where.leaf) == (0, "logits")


def compare(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "run.json"
    done = subprocess.run(
        [sys.executable, "-m", "shared", "compare", "--model", dc.MODEL, "--json", str(out), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_compare_every_framework_every_loop_agrees_and_decodes(tmp_path: Path) -> None:
    """The default run (300 steps of sgd): every framework and loop within the declared
    tolerances, the greedy decodes the same tokens, accuracy >= 0.95 in every framework."""
    result = compare(tmp_path)
    decode = result["comparison"]["decode"]
    assert set(decode) == set(FRAMEWORKS)
    for name, row in decode.items():
        assert row["accuracy"] >= 0.95, name
        assert row["same_decode"], name
    assert len(result["trajectories"]) == 3 * len(FRAMEWORKS)  # harness, native, scan
    for key, trajectory in result["trajectories"].items():
        assert trajectory["eval"]["accuracy"] >= 0.95, key  # teacher-forced, held out


def test_the_cache_is_not_training_state() -> None:
    """Every framework: no canonical state, and a cache entry given as state refused by name."""
    for name in FRAMEWORKS:
        impl, params, state = built(name)
        canonical, canonical_state = impl.to_canonical(params, state)
        assert canonical_state == {}
        assert sorted(canonical) == sorted(dc.CANONICAL_PARAMS)
        with pytest.raises(ValueError, match=r"cache\.key"):
            impl.from_canonical(canonical, {"cache.key": jnp.zeros(1)})


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["shard_map", "jit"])
def test_data_parallel_on_two_devices_agrees_with_one(tmp_path: Path, mode: str) -> None:
    """Two CPU devices against one, every framework's harness loop, within DEVICES."""
    result = compare(tmp_path, "--devices", "2", "--parallel", mode, "--loop", "harness")
    assert result["comparison"]["agree"] is True
    assert all(row["accuracy"] >= 0.95 for row in result["comparison"]["decode"].values())


@pytest.mark.slow
def test_adam_without_the_attention_biases_agrees(tmp_path: Path) -> None:
    """Under Adam the attention's biases are dropped (the key's has no true gradient): every
    framework within ADAPTIVE_ACROSS, and the decodes still reach >= 0.95."""
    result = compare(tmp_path, "--optimizer", "adam", "--lr", "0.01", "--loop", "harness")
    assert result["comparison"]["agree"] is True
    params = result["trajectories"]["flax_linen/harness"]["params"]
    assert not any(k.startswith("attn.") and k.endswith(".bias") for k in params)
    assert all(row["accuracy"] >= 0.95 for row in result["comparison"]["decode"].values())


@pytest.mark.slow
def test_the_native_loops_resume_bitwise_in_a_fresh_process(capsys: pytest.CaptureFixture) -> None:
    """Every framework's native loop saved after step 3 and resumed in a fresh process: the
    weights and the optimizer state carry it on bitwise; the cache, not training state, is
    not in the checkpoint."""
    from shared.cli import main

    args = ["checkpoint", "resume", "--model", dc.MODEL, "--steps", "6", "--at", "3"]
    code = main([*args, "--loop", "native"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "5 of 5 resumed bitwise with a clean audit" in out
