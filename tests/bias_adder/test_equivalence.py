"""(a) and (b): the five implementations are bitwise equal within each loop, and loops agree."""

from __future__ import annotations

import pytest
from helpers import IMPLS, MATRIX, UNJITTED, measured_on_the_311_set, trained

import shared
from shared.models import bias_adder
from shared.models.bias_adder import SCAN

LOOPS_AND_MATRIX = [
    pytest.param(loop, True, *p.values, id=f"{loop}-True-{p.id}")
    for loop in ("harness", "native", "scan")
    for p in MATRIX
] + [pytest.param("harness", False, *p.values, id=f"harness-False-{p.id}") for p in UNJITTED]


@pytest.mark.parametrize(
    ("loop", "jit", "optimizer", "momentum", "batch", "features"), LOOPS_AND_MATRIX
)
def test_implementations_bitwise_equal_within_a_loop(
    loop, jit, optimizer, momentum, batch, features
):
    reference = trained("jax", loop, optimizer, momentum, batch, features, jit)
    assert reference.steps == 50
    for impl in IMPLS:
        run = trained(impl, loop, optimizer, momentum, batch, features, jit)
        if loop == "native" and impl == "keras":  # Keras's own optimizer and loss tracker
            tolerance, loss = native_bound(impl, optimizer, features)
            result = shared.compare(run, reference, tolerance, loss_tolerance=loss)
            assert result.first_divergence is None, (impl, result)
            continue
        result = shared.compare(run, reference)
        assert result.bitwise, (impl, result)


def native_bound(impl: str, optimizer: str, features: int):
    """The spec's bound of `impl/native` against a harness run: bitwise, except for Keras's
    native loop, which trains with Keras's optimizer and reports its loss tracker's loss."""
    tolerances = bias_adder.tolerances(
        bias_adder.BiasAdderConfig(features), shared.OptimizerConfig(optimizer)
    )
    return tolerances.for_pair(f"{impl}/native", "jax/harness")


@pytest.mark.parametrize(("optimizer", "momentum", "batch", "features"), MATRIX)
@pytest.mark.parametrize("impl", IMPLS)
def test_native_loop_bitwise_equal_to_harness(impl, optimizer, momentum, batch, features):
    native = trained(impl, "native", optimizer, momentum, batch, features)
    harness = trained(impl, "harness", optimizer, momentum, batch, features)
    tolerance, loss = native_bound(impl, optimizer, features)
    result = shared.compare(native, harness, tolerance, loss_tolerance=loss)
    assert result.first_divergence is None, result
    if impl != "keras":
        assert tolerance == shared.BITWISE and loss is None and result.bitwise


@measured_on_the_311_set("the bias adder's scan bound (SCAN: 4 ULP, params and state bitwise)")
@pytest.mark.parametrize(("optimizer", "momentum", "batch", "features"), MATRIX)
@pytest.mark.parametrize("impl", IMPLS)
def test_scan_within_stated_ulp_bound_of_harness(impl, optimizer, momentum, batch, features):
    scan = trained(impl, "scan", optimizer, momentum, batch, features)
    harness = trained(impl, "harness", optimizer, momentum, batch, features)
    result = shared.compare(scan, harness, SCAN)
    assert result.first_divergence is None, result
