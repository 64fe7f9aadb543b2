"""Every native variant trains like the harness step, step by step and bitwise.

In the style of optax's equivalence tests: from the same initial values, run each variant
of each implementation (`Implementation.native_variants`) and the harness's generic
`TrainStep` under `jax.jit` side by side on the same batches, and after every step compare
the loss and the canonical params and state.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import shared
from shared.core import setup_run

MODELS = ("bias-adder", "bias-stack")
"""The models whose implementations' variants are checked (one line per model)."""

OPTIMIZERS = ("adam",)  # its moments make the optimizer state part of the check
STEPS = 5
BATCH = 5  # not a power of two: XLA rewrites a division by 2^k as an exact multiplication

CASES = [
    pytest.param(model, impl, optimizer, id=f"{model}-{impl}-{optimizer}")
    for model in MODELS
    for impl in shared.implementations(model)
    for optimizer in OPTIMIZERS
]


def _canonical(impl: shared.Implementation, params: object, state: object) -> dict:
    """Loss-free snapshot: canonical params and state as numpy, under `params.`/`state.`."""
    cparams, cstate = impl.to_canonical(params, state)
    return {
        **{f"params.{k}": np.asarray(v) for k, v in cparams.items()},
        **{f"state.{k}": np.asarray(v) for k, v in cstate.items()},
    }


def _mismatches(got: dict, want: dict) -> list[str]:
    """The names whose arrays differ in shape, dtype or any bit, with their largest gap."""
    if got.keys() != want.keys():
        return [f"names {sorted(got)} != {sorted(want)}"]
    out = []
    for name in want:
        a, b = got[name], want[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            out.append(f"{name}: {a.dtype}{a.shape} != {b.dtype}{b.shape}")
        elif not np.array_equal(a, b):
            out.append(f"{name}: max |diff| {np.max(np.abs(a - b)):.3g}")
    return out


@pytest.mark.parametrize(("model", "impl_name", "optimizer"), CASES)
def test_every_native_variant_is_bitwise_the_harness_step(model, impl_name, optimizer):
    run = setup_run(
        shared.load_spec(model), shared.RunOptions(steps=STEPS, batch=BATCH, optimizer=optimizer)
    )
    impl = shared.make(impl_name, run.config, model)
    if not hasattr(impl, "native_variants"):
        pytest.skip(f"{impl_name} has no native variants")
    params, state = run.initial(impl, run.config)
    tx = run.optimizer.make()
    variants = impl.native_variants(params, state, tx)
    assert variants, f"{impl_name}: native_variants returned none"

    # The reference: the harness's generic step under jax.jit, one call per batch.
    harness = jax.jit(shared.TrainStep(impl, run.spec.loss, tx, run.spec.inputs))
    h_params, h_state, h_opt = params, state, tx.init(params)
    failures = []
    for step, batch in enumerate(shared.unstack(run.batches), start=1):
        h_params, h_state, h_opt, h_loss = harness(h_params, h_state, h_opt, batch)
        want = {"loss": np.asarray(h_loss), **_canonical(impl, h_params, h_state)}
        for name, loop in variants.items():
            loss = loop.step(batch)
            got = {"loss": np.asarray(loss), **_canonical(impl, *loop.read())}
            failures += [f"{name} step {step}: {m}" for m in _mismatches(got, want)]
    assert not failures, f"{impl_name}/{optimizer}: not bitwise the harness step: {failures}"
    # A variant that donates its buffers copies the values it starts from first.
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves((params, state)))


@pytest.mark.parametrize("model", MODELS)
def test_the_frameworks_offer_native_variants(model):
    """Every framework with a native loop of its own, but Haiku (whose native loop already
    is plain `jax.jit` on dicts), offers variants, so the test above is not vacuous."""
    expected = {"flax_linen", "flax_nnx", "equinox", "keras"}
    offered = {
        name
        for name, target in shared.implementations(model).items()
        if hasattr(shared.load_factory(target), "native_variants")
    }
    assert expected <= offered
