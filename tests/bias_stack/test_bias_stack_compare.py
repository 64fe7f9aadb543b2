"""The bias stack at depth 3 through the real comparison path, 10 steps: every implementation
in every loop, with adam (the richest optimizer state), on the command line (`state-rosetta
compare`); harness and native runs bitwise to `jax/harness` at every step (Equinox within
its declared bound: its vmapped dots sum in the reference's order on some CPUs only)."""

from __future__ import annotations

import numpy as np
import pytest

import shared
from shared.models import bias_stack

DEPTH, STEPS = 3, 10
IMPLS = list(shared.implementations("bias-stack"))
LOOPS = ("harness", "native", "scan")
REFERENCE = "jax/harness"


def steps_equal(a: shared.Trajectory, b: shared.Trajectory) -> None:
    """`a` and `b` are bitwise equal at every step: params, state and loss."""
    assert a.steps == b.steps == STEPS
    for kind in ("params", "state"):
        got, want = getattr(a, kind), getattr(b, kind)
        assert got.keys() == want.keys()
        for name in want:
            assert len(got[name]) == len(want[name]) == STEPS + 1
            for step, (x, y) in enumerate(zip(got[name], want[name], strict=True)):
                assert x.dtype == y.dtype == np.float32, (kind, name, step)
                assert np.array_equal(x, y), (kind, name, step, x, y)
    for step, (x, y) in enumerate(zip(a.loss, b.loss, strict=True)):
        assert np.array_equal(x, y), ("loss", step, x, y)


def check_run(trajectories: dict[str, shared.Trajectory], optimizer: str) -> None:
    """Every trajectory against `jax/harness`, each by the bound the spec declares for it."""
    expected = {f"{impl}/{loop}" for impl in IMPLS for loop in LOOPS}
    assert set(trajectories) == expected | {shared.ORACLE_KEY}
    reference = trajectories[REFERENCE]
    assert set(reference.params) == {
        f"layers.{i}.{name}" for i in range(DEPTH) for name in ("kernel", "bias")
    }
    assert set(reference.state) == {f"layers.{i}.mean" for i in range(DEPTH)}
    tolerances = bias_stack.tolerances(
        bias_stack.BiasStackConfig(DEPTH), shared.OptimizerConfig(optimizer)
    )
    for key, trajectory in trajectories.items():
        if key == REFERENCE:
            continue
        tolerance, loss = tolerances.for_pair(key, REFERENCE)
        result = shared.compare(trajectory, reference, tolerance, loss_tolerance=loss)
        assert result.first_divergence is None, (key, result)
        if key == shared.ORACLE_KEY:
            assert tolerance == bias_stack.oracle_tolerance(DEPTH)
        elif key.startswith("equinox/"):  # a vmapped matvec: its declared bound
            # At D = 4 the same bits on the 3.11 set on AVX-512 x86-64 CPUs; an AVX2 one
            # (and jax 0.12's transposed product) sums in another order: within EQUINOX.
            assert tolerance == bias_stack.EQUINOX
        elif key.endswith("/scan"):  # one program for every step: a few ULP in the loss
            assert tolerance == bias_stack.SCAN
        elif key == "keras/native":  # Keras's own optimizer: a declared, measured bound
            assert tolerance != shared.BITWISE
        else:  # the harness and the native loops: the reference's bits, step by step
            assert tolerance == shared.BITWISE and loss is None
            steps_equal(trajectory, reference)


@pytest.mark.slow  # every implementation and loop compiled: the fast tier's bias stack is
# tests/core/test_native_variants.py's and the bench's
def test_compare_on_the_command_line_with_adam(cli_run):
    run = cli_run("compare", "--model", "bias-stack", "--depth", str(DEPTH), "--optimizer", "adam")
    assert run.code == 0, run.output[-3000:]  # every pair within its declared bound
    assert "all trajectories agree" in run.output
    assert run.json["config"]["depth"] == DEPTH and run.json["model"] == "bias-stack"
    check_run(run.run.trajectories, "adam")
