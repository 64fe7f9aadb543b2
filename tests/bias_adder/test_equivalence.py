"""(a) and (b): the five implementations are bitwise equal within each loop, and loops agree.

Every implementation is compared with the reference (pure JAX) loop for loop; the loops are
compared with one another on the reference alone: an implementation bitwise equal to the
reference in two loops compares across them exactly as the reference does, so its own
loop-against-loop comparison could not fail alone. Keras's native loop, which trains with
Keras's own optimizer and is held to a bound rather than bitwise, is compared with the
reference's native loop under that bound, which is its bound against the reference's
harness loop once those two are bitwise equal.
"""

from __future__ import annotations

import pytest
from helpers import (
    IMPLS,
    LOOPS_AND_MATRIX,
    MATRIX,
    OTHERS,
    REFERENCE,
    STEPS,
    measured_on_the_311_set,
    native_bound,
    trained,
)

import shared
from shared.models.bias_adder import SCAN


@pytest.mark.parametrize(
    ("loop", "jit", "optimizer", "momentum", "batch", "features"), LOOPS_AND_MATRIX
)
def test_implementations_bitwise_equal_within_a_loop(
    loop, jit, optimizer, momentum, batch, features
):
    reference = trained(REFERENCE, loop, optimizer, momentum, batch, features, jit)
    assert reference.steps == STEPS
    for impl in OTHERS:
        run = trained(impl, loop, optimizer, momentum, batch, features, jit)
        tolerance, loss = native_bound(impl, optimizer, features)
        if loop == "native" and (tolerance, loss) != (shared.BITWISE, None):
            result = shared.compare(run, reference, tolerance, loss_tolerance=loss)
            assert result.first_divergence is None, (impl, result)
            continue
        result = shared.compare(run, reference)
        assert result.bitwise, (impl, result)


def test_the_spec_holds_every_native_loop_but_kerass_to_bitwise():
    """What `compare` judges native loops by: the spec's bounds, bitwise but for Keras's."""
    for p in MATRIX:
        optimizer, _, _, features = p.values
        bounds = {i: native_bound(i, optimizer, features) for i in IMPLS}
        assert [i for i, b in bounds.items() if b != (shared.BITWISE, None)] == ["keras"], p.id


@pytest.mark.parametrize(("optimizer", "momentum", "batch", "features"), MATRIX)
def test_native_loop_bitwise_equal_to_harness(optimizer, momentum, batch, features):
    native = trained(REFERENCE, "native", optimizer, momentum, batch, features)
    harness = trained(REFERENCE, "harness", optimizer, momentum, batch, features)
    result = shared.compare(native, harness)
    assert result.bitwise, result


@measured_on_the_311_set("the bias adder's scan bound (SCAN: 4 ULP, params and state bitwise)")
@pytest.mark.parametrize(("optimizer", "momentum", "batch", "features"), MATRIX)
def test_scan_within_stated_ulp_bound_of_harness(optimizer, momentum, batch, features):
    scan = trained(REFERENCE, "scan", optimizer, momentum, batch, features)
    harness = trained(REFERENCE, "harness", optimizer, momentum, batch, features)
    result = shared.compare(scan, harness, SCAN)
    assert result.first_divergence is None, result
