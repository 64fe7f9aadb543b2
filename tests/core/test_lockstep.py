"""Lockstep and loop-for-loop pairs: a model whose correct ports part running free agrees,
a bug that starts after they parted is located at its own step, a reference that scans
differently from how it steps fails nothing, and a bug in a port's scan is still caught."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import jax.numpy as jnp
import pytest
from helpers import plugin

import shared
from shared.models import bias_adder

bn4 = plugin("core/plugins/bn4.py")
PORTS = [bn4.MultiplyByRsqrt, bn4.DivideBySqrt, bn4.BuggyFromStep]


@functools.cache
def _bn4_run() -> shared.CompareResult:
    return shared.cross_validate(bn4.SPEC, PORTS, loops=["harness", "scan"])


def _pair(result: shared.CompareResult, a: str, kind: str = "across") -> shared.PairResult:
    return next(p for p in result.pairs if p.a == a and p.kind == kind)


def test_correct_ports_that_part_running_free_agree_step_by_step():
    pair = _pair(_bn4_run(), "sqrt/harness")
    # Running free, a relu flip parts them beyond the bound, well before the bug's step...
    assert pair.first_divergence is not None and pair.first_divergence.step < bn4.BUG_STEP
    assert pair.max_abs > 5 * pair.tolerance.atol
    # ...while every one of its steps, taken from the reference's values, is within it.
    assert pair.lockstep is not None and pair.lockstep.agree
    assert pair.lockstep.max_abs < pair.max_abs  # a local error does not accumulate
    assert pair.ok and pair.verdict == "agrees locally"
    assert pair.parting is not None and "rounding, amplified" in pair.parting.reason


def test_the_scan_loops_of_correct_ports_part_as_their_harness_loops_do():
    result = _bn4_run()
    scan = _pair(result, "sqrt/scan")
    assert not scan.agree and scan.ok and scan.parting is not None
    assert "follows its own harness loop" in scan.parting.reason
    assert result.status("sqrt/scan") == "agree"


def test_a_bug_after_the_parting_is_located_at_its_first_step_in_lockstep():
    result = _bn4_run()
    pair = _pair(result, "buggy/harness")
    assert pair.first_divergence is not None and pair.first_divergence.step < bn4.BUG_STEP
    ls = pair.lockstep
    assert ls is not None and ls.first_divergence is not None
    assert ls.first_divergence.step == bn4.BUG_STEP
    # Epsilon changes the normalised output, not the batch statistics: the loss is the
    # first leaf in data-flow order, then the gradients; the state agrees.
    leaves = [leaf.leaf for leaf in ls.first_divergence.leaves]
    assert leaves[0] == "loss" and not any(leaf.startswith("state.") for leaf in leaves)
    assert any(leaf.startswith("grads.") for leaf in leaves)
    assert ls.first_divergence.leaves[0].ulp > 1000  # far above the bound's 8 ULP
    assert not pair.ok and not result.agree
    with pytest.raises(
        AssertionError, match=f"buggy/harness .* in lockstep .* step {bn4.BUG_STEP}"
    ):
        shared.check_agreement(result)


def test_without_lockstep_the_correct_port_is_reported_as_diverging():
    result = shared.cross_validate(bn4.SPEC, PORTS[:2], loops=["harness"], lockstep=False)
    (pair,) = result.pairs
    assert pair.lockstep is None and not pair.ok and not result.agree


# --- a reference whose scan differs from how it steps ----------------------------------


def test_a_reference_that_scans_differently_fails_no_default_run():
    # The bias adder's scan differs from its harness loop in the loss (a few ULP): a spec
    # that declares no tolerance (bitwise) reports that loop check and judges nothing by it.
    spec = replace(
        bias_adder.SPEC, tolerances=shared.Tolerances(same=shared.UNDECLARED), oracle=None
    )
    result = shared.cross_validate(
        spec, [bias_adder.JaxBiasAdder, "impl_haiku:HaikuBiasAdder"], loops=["harness", "scan"]
    )
    loop = _pair(result, "jax/scan", kind="loop")
    assert not loop.agree and not loop.judged and loop.verdict == "reported"
    across = _pair(result, "haiku/scan")
    assert across.b == "jax/scan" and across.bitwise  # the same program, loop for loop
    assert result.agree


@dataclass(frozen=True)
class TracedMomentum(bias_adder.JaxBiasAdder):
    """A port with the field notes' trap: `1 - momentum` traced in float32 (0.100000024)."""

    name: str = "traced-momentum"

    def apply(self, params, state, x, *, train):
        if not train:
            return super().apply(params, state, x, train=train)
        m = jnp.float32(self.config.momentum)
        mean = m * state["mean"] + (1 - m) * x.mean(axis=0)
        return mean + params["bias"], {"mean": mean}


def test_a_bug_in_a_ports_scan_is_caught_though_scan_and_harness_differ():
    result = shared.cross_validate(
        bias_adder.SPEC, [bias_adder.JaxBiasAdder, TracedMomentum], loops=["harness", "scan"]
    )
    # The reference's own scan is within its declared scan bound of its harness loop...
    assert _pair(result, "jax/scan", kind="loop").agree
    # ...and the port's scan is judged against the reference's scan, bitwise, not by that
    # looser bound: the few-ULP bug in the running mean is named at step 1.
    scan = _pair(result, "traced-momentum/scan")
    assert scan.b == "jax/scan" and scan.tolerance == shared.BITWISE
    assert scan.first_divergence is not None and scan.first_divergence.step == 1
    assert scan.first_divergence.leaf == "state.mean" and not scan.ok
    # A scan bound would have let it through: it is within the bias adder's 4-ULP scan bound.
    assert scan.first_divergence.leaves[0].ulp <= bias_adder.SCAN.max_ulp
