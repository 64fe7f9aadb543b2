"""The harness fast path: identical compiled programs across frameworks, same trajectory as the
plain step, and donated buffers never touched again. Nothing here is timed."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from helpers import IMPLS, batches, trained

import shared
from shared.bench import Row, targets
from shared.models.bias_adder import BiasAdderConfig, bias_adder_loss

FEATURES = 4


def _lowered(impl_name: str, batch: int, features: int, optimizer: str, momentum: float = 0.9):
    impl = shared.make(impl_name, BiasAdderConfig(features, momentum))
    x = batches(batch, features)[0]
    params, state = impl.init(jax.random.key(0), x)
    tx = shared.OptimizerConfig(optimizer).make()
    fast = shared.FlatStep(impl, bias_adder_loss, tx, params, state)
    return fast.jitted.lower(fast.leaves, x).compile()


def normalized_hlo(text: str) -> str:
    """Optimised HLO without metadata, source locations, module name and instruction names."""
    debug_tables = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")
    blocks = [b for b in text.split("\n\n") if not b.strip().startswith(debug_tables)]
    text = "\n\n".join(blocks)
    text = re.sub(r",?\s*metadata=\{[^}]*\}", "", text)
    text = re.sub(r",?\s*stack_frame_id=\d+", "", text)
    text = re.sub(r"^HloModule \S+", "HloModule m", text, flags=re.MULTILINE)
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"%v{len(names)}")

    return re.sub(r"%[\w.\-]+", rename, text)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(("batch", "features"), [(8, 4), (33, 17)])
def test_fast_step_compiles_to_identical_hlo_and_cost_across_frameworks(optimizer, batch, features):
    compiled = {name: _lowered(name, batch, features, optimizer) for name in IMPLS}
    reference = normalized_hlo(compiled["jax"].as_text())
    ref_cost = compiled["jax"].cost_analysis()
    assert "ENTRY" in reference and "constant" in reference  # a real program survived
    # The normalisation keeps what matters: another momentum is another program.
    assert normalized_hlo(_lowered("jax", batch, features, optimizer, 0.5).as_text()) != reference
    for name, c in compiled.items():
        assert normalized_hlo(c.as_text()) == reference, name
        cost = c.cost_analysis()
        assert cost["flops"] == ref_cost["flops"] and cost["flops"] > 0, name
        assert cost["bytes accessed"] == ref_cost["bytes accessed"], name


@pytest.mark.parametrize("impl_name", IMPLS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fast_step_trajectory_is_bitwise_the_harness_trajectory(impl_name, optimizer):
    impl = shared.make(impl_name, BiasAdderConfig(5))
    xs = batches(33, 5)
    params, state = impl.init(jax.random.key(0), xs[0])
    fast = shared.FlatStep(
        impl, bias_adder_loss, shared.OptimizerConfig(optimizer).make(), params, state
    )
    traj = shared.Trajectory()
    traj.record_initial(*impl.to_canonical(params, state))
    for x in xs:
        loss = fast(x)
        traj.record_step(loss, *impl.to_canonical(*fast.read()))
    # Same model config and data as helpers' cached runs: B33xD5 is not in the matrix, so
    # compare with a plain harness run here.
    plain = shared.run_harness(
        impl, params, state, shared.OptimizerConfig(optimizer).make(), xs, bias_adder_loss
    )[0]
    assert shared.compare(traj, plain).bitwise


def test_fast_step_matches_cached_matrix_run():
    impl = shared.make("equinox", BiasAdderConfig(FEATURES, 0.5))
    xs = batches(8, FEATURES)
    params, state = impl.init(jax.random.key(0), xs[0])
    fast = shared.FlatStep(
        impl, bias_adder_loss, shared.OptimizerConfig("adam").make(), params, state
    )
    losses = [np.asarray(fast(x)) for x in xs]
    assert np.array_equal(losses, trained("equinox", "harness", "adam", 0.5, 8, FEATURES).loss)


@pytest.mark.parametrize("impl_name", IMPLS)
def test_donated_buffers_are_not_used_after_donation(impl_name):
    impl = shared.make(impl_name, BiasAdderConfig(FEATURES))
    xs = batches(8, FEATURES)[:5]
    params, state = impl.init(jax.random.key(0), xs[0])
    fast = shared.FlatStep(
        impl, bias_adder_loss, shared.OptimizerConfig("adam").make(), params, state
    )
    for x in xs:
        before = list(fast.leaves)
        fast(x)
        # Every buffer handed to the step was donated: XLA deleted it, and reading it raises.
        assert all(leaf.is_deleted() for leaf in before)
        with pytest.raises(RuntimeError, match="deleted"):
            np.asarray(before[0])
        assert not any(leaf.is_deleted() for leaf in fast.leaves)
    # The caller's arrays were copied, never donated: they still hold the initial zeros.
    for leaf in jax.tree.leaves((params, state)):
        assert not leaf.is_deleted() and not np.any(np.asarray(leaf))


def _row(impl, path, shape, median):
    size = "large" if shape == "L" else "tiny"
    # Ratios to the baseline, pure JAX's native step, whose median is 10.0 in every test here.
    ratio = median / 10.0
    return Row(
        impl, path, "bias-adder", shape, 0.1, median, median, median, ratio, "jax/native", size=size
    )


def test_bench_targets_are_judged_from_the_rows():
    rows = [
        _row("jax", "native", "B8xD4", 10.0),
        _row("a", "harness", "B8xD4", 11.0),
        _row("a", "scan", "B8xD4", 0.5),
        _row("jax", "native", "L", 10.0),
        _row("a", "harness", "L", 10.6),
    ]
    met = [t.ok for t in targets(rows)]
    assert met == [True, False, True]  # 1.10 <= 1.10; 1.06 > 1.05; 11 / 0.5 = 22 >= 20
    # --quick judges no large shape: its ratios are too noisy.
    assert [t.judged for t in targets(rows, quick=True)] == [True, False, True]
