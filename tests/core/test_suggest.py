"""`compare --suggest-tolerances`: the rounding floor measured from the reference alone, each
measurement beside the spec's declared bound, as a block a porter can paste."""

from __future__ import annotations

import pytest
from helpers import measured_on_the_311_set

import shared
from shared.models import bias_adder

PORTING = (
    "examples/porting/scale_var.py:SPEC",
    "examples/porting/scale_var_nnx.py:NNXScaleVar",
)


@pytest.fixture(scope="module")
def bias_adder_measured() -> dict[str, shared.Measured]:
    measured = shared.suggest_tolerances(shared.CompareOptions())
    return {m.slot: m for m in measured}


def test_the_bias_adders_scan_and_oracle_bounds_hold_what_is_measured(bias_adder_measured):
    scan, oracle = bias_adder_measured["scan"], bias_adder_measured["oracle"]
    assert scan.declared == bias_adder.SCAN and scan.holds
    assert 0 < scan.pair.max_ulp <= bias_adder.SCAN.max_ulp  # its loss, a few ULP
    assert oracle.declared == bias_adder.ORACLE and oracle.holds
    # Each suggestion leaves twice the room measured, and holds its own measurement.
    for m in (scan, oracle):
        assert m.runs is not None and shared.compare(*m.runs, m.suggested).agree


def test_a_bitwise_same_bound_is_explained_not_called_wrong(bias_adder_measured):
    same = bias_adder_measured["same"]
    assert same.declared == shared.BITWISE and not same.holds and not same.pair.bitwise
    assert "compile to the reference's program" in same.verdict()


# On the 3.12 set on an AVX2 CPU the scan measures 2 ULP from the harness: no bitwise scan there.
@measured_on_the_311_set("the porting example's bitwise scan")
def test_the_porting_examples_spec_declares_nothing_and_gets_a_block(capsys):
    from shared.cli import main

    model, impl = PORTING
    code = main(["compare", "--model", model, "--impl", impl, "--suggest-tolerances"])
    out = capsys.readouterr().out
    assert code == 0
    assert "declares none: the suggestion would be new" in out
    block = out[out.index("Tolerances(") :]
    namespace = {"Tolerances": shared.Tolerances, "Tolerance": shared.Tolerance}
    # The block is meant to be pasted into a spec: evaluating it is what a porter does.
    tolerances = eval(block.strip(), namespace)
    assert isinstance(tolerances, shared.Tolerances) and tolerances.scan == shared.Tolerance(
        reason=tolerances.scan.reason
    )  # the example's scan is bitwise: the suggestion says so
    assert tolerances.same.max_ulp > 0 and tolerances.same.atol > 0
