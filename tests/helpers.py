"""Helpers shared by the tests: the bias adder's test matrix and cached training runs.

Imported as `from helpers import ...` (pytest puts `tests/` on the path: see pyproject).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import jax
import numpy as np
import pytest

import shared
from shared.models import bias_adder

STEPS = 50
DIGITS_ACCURACY = 0.95
"""The least test accuracy a trained MLP on digits may reach (measured 0.96 to 0.9644 in every
framework and mode: docs/batchnorm.md, docs/parallel.md)."""
SHAPES = [(8, 4), (5, 3), (33, 17)]  # B8xD4, and non-powers of two (XLA rewrites 1/B for 2^k)
MOMENTA = [0.9, 0.5]
OPTIMIZERS = ["sgd", "adam"]
IMPLS = list(shared.implementations("bias-adder"))
MLP_BN_IMPLS = list(shared.implementations("mlp-bn"))
# The second momentum (its own `1 - momentum` rounding, its own EMA) at the shape that tells
# programs apart, B5xD3, only: at the other shapes it repeats the first's programs with
# other constants, and the suite has a 10-minute budget on 2 cores.
MATRIX = [
    pytest.param(opt, m, b, d, id=f"{opt}-m{m}-B{b}xD{d}")
    for opt in OPTIMIZERS
    for m in MOMENTA
    for b, d in SHAPES
    if m == MOMENTA[0] or (b, d) == (5, 3)
]
# Without jit every op is dispatched on its own, 50 steps times six implementations: unjitted
# runs take the non-power-of-two shape B5xD3 only (XLA rewrites 1/B as a multiply for powers
# of two, so that shape is the one that can tell programs apart), with each optimizer at the
# default momentum.
UNJITTED = [p for p in MATRIX if p.id.endswith("m0.9-B5xD3")]
# Every jitted loop on the whole matrix, the unjitted harness on UNJITTED. The fast tier runs
# each loop at UNJITTED's points (the shape that tells programs apart, with either optimizer);
# the slow tier the rest of the matrix.
LOOPS_AND_MATRIX = [
    pytest.param(
        loop,
        True,
        *p.values,
        id=f"{loop}-True-{p.id}",
        marks=() if p in UNJITTED else pytest.mark.slow,
    )
    for loop in ("harness", "native", "scan")
    for p in MATRIX
] + [pytest.param("harness", False, *p.values, id=f"harness-False-{p.id}") for p in UNJITTED]
REFERENCE = bias_adder.SPEC.reference
"""The bias adder's reference implementation (pure JAX), which every other is compared with."""
OTHERS = [impl for impl in IMPLS if impl != REFERENCE]


def native_bound(impl: str, optimizer: str, features: int):
    """The spec's bound of the bias adder's `impl/native` against the reference's harness
    loop: bitwise, except for Keras's native loop, which trains with Keras's optimizer and
    reports its loss tracker's loss."""
    tolerances = bias_adder.tolerances(
        bias_adder.BiasAdderConfig(features), shared.OptimizerConfig(optimizer)
    )
    return tolerances.for_pair(f"{impl}/native", f"{REFERENCE}/harness")


@functools.cache
def batches(batch: int, features: int, steps: int = STEPS, seed: int = 0) -> np.ndarray:
    """A fresh batch per step, with a nonzero mean so that the EMA has somewhere to go."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((steps, batch, features), dtype=np.float32) + np.float32(0.5)
    return data


@functools.cache
def trained(
    impl: str,
    loop: str,
    optimizer: str,
    momentum: float,
    batch: int,
    features: int,
    jit: bool = True,
) -> shared.Trajectory:
    """Train one bias adder implementation in one loop (cached across tests)."""
    config = bias_adder.BiasAdderConfig(features, momentum)
    model = shared.make(impl, config)
    xs = batches(batch, features)
    params, state = model.init(jax.random.key(0), xs[0])
    tx = shared.OptimizerConfig(optimizer).make()
    loss = bias_adder.bias_adder_loss
    if loop == "harness":
        return shared.run_harness(model, params, state, tx, xs, loss, jit=jit)[0]
    if loop == "scan":
        return shared.run_scan(model, params, state, tx, xs, loss, jit=jit)
    assert jit, "native loops are jitted by definition"
    return shared.run_native(model, params, state, tx, xs)


@functools.cache
def oracle(optimizer: str, momentum: float, batch: int, features: int) -> shared.Trajectory:
    config = bias_adder.BiasAdderConfig(features, momentum)
    return shared.Trajectory.from_steps(
        bias_adder.bias_adder_oracle(
            batches(batch, features), config, shared.OptimizerConfig(optimizer)
        )
    )


def tree_equal(a: dict, b: dict) -> bool:
    """Bitwise equality of two flat dicts of arrays (shapes and dtypes included)."""
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype and np.array_equal(a[k], b[k]) for k in a
    )


# pyproject pins two release sets by python_version: Python 3.11 installs the set that the
# stated bounds, the docs and the README were measured with (jax/jaxlib 0.10.2, flax 0.12.8);
# Python 3.12 installs the newest releases (jax/jaxlib 0.12.0.1, flax 0.12.12), whose XLA
# rounds some programs differently (another FMA contraction, YNNPACK's dot kernels).
NEWER_RELEASE_SET = sys.version_info >= (3, 12)


def measured_on_the_311_set(what: str) -> pytest.MarkDecorator:
    """Skip, on the 3.12 release set, a test that checks numbers measured on the 3.11 set."""
    return pytest.mark.skipif(
        NEWER_RELEASE_SET,
        reason=f"checks {what}, measured on the Python 3.11 release set (jax 0.10.2); this is "
        "the 3.12 set (jax 0.12.0.1), whose XLA rounds differently",
    )


def where(divergence: dict) -> dict:
    """A JSON first divergence's step and first leaf (its `leaves` list the rest)."""
    return {"step": divergence["step"], "leaf": divergence["leaf"]}


def against_reference(pairs: list[dict]) -> dict[str, dict]:
    """A run's JSON pairs by trajectory, each against the reference implementation's same
    loop (loop for loop), leaving out the loop checks (a loop against its own harness)."""
    return {p["a"]: p for p in pairs if p.get("kind") != "loop"}


TESTS = Path(__file__).resolve().parent


@functools.cache
def plugin(relative: str) -> ModuleType:
    """A test plug-in module by its path under `tests/` (`"core/plugins/bn4.py"`), imported
    once under a name of its own (the folders' `plugins` names would collide)."""
    path = TESTS / relative
    name = "test_plugin_" + "_".join(path.relative_to(TESTS).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
