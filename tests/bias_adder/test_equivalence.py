"""(a) and (b): the five implementations are bitwise equal within each loop, and loops agree."""

from __future__ import annotations

import pytest
from helpers import IMPLS, MATRIX, trained

import shared
from shared.models.bias_adder import SCAN


@pytest.mark.parametrize(("optimizer", "momentum", "batch", "features"), MATRIX)
@pytest.mark.parametrize(
    ("loop", "jit"), [("harness", True), ("harness", False), ("native", True), ("scan", True)]
)
def test_implementations_bitwise_equal_within_a_loop(
    loop, jit, optimizer, momentum, batch, features
):
    reference = trained("jax", loop, optimizer, momentum, batch, features, jit)
    assert reference.steps == 50
    for impl in IMPLS:
        result = shared.compare(
            trained(impl, loop, optimizer, momentum, batch, features, jit), reference
        )
        assert result.bitwise, (impl, result)


@pytest.mark.parametrize(("optimizer", "momentum", "batch", "features"), MATRIX)
@pytest.mark.parametrize("impl", IMPLS)
def test_native_loop_bitwise_equal_to_harness(impl, optimizer, momentum, batch, features):
    native = trained(impl, "native", optimizer, momentum, batch, features)
    harness = trained(impl, "harness", optimizer, momentum, batch, features)
    assert shared.compare(native, harness).bitwise


@pytest.mark.parametrize(("optimizer", "momentum", "batch", "features"), MATRIX)
@pytest.mark.parametrize("impl", IMPLS)
def test_scan_within_stated_ulp_bound_of_harness(impl, optimizer, momentum, batch, features):
    scan = trained(impl, "scan", optimizer, momentum, batch, features)
    harness = trained(impl, "harness", optimizer, momentum, batch, features)
    result = shared.compare(scan, harness, SCAN)
    assert result.first_divergence is None, result
