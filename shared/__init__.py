"""jax-state-rosetta's harness: protocol, reference, oracle, training loops and comparison.

Imports JAX, optax and NumPy only; frameworks are reached through the registry.
"""

from ._compare import BITWISE, Divergence, PairResult, Tolerance, compare, ulp_distance
from ._data import as_batches, seed_batch
from ._harness import LOOPS, FlatStep, TrainStep, run_harness, run_loop, run_native, run_scan
from ._optim import OPTIMIZERS, OptimizerConfig
from ._oracle import NumpyOptimizer, bias_adder_oracle
from ._protocol import (
    Batch,
    BiasAdderConfig,
    Canonical,
    Implementation,
    ImplementationFactory,
    NativeLoop,
    Params,
    State,
)
from ._reference import JaxBiasAdder, bias_adder_loss
from ._registry import IMPLEMENTATIONS, REFERENCE, load_factory, make, versions
from ._run import CompareOptions, CompareResult, run_compare
from ._tolerances import ORACLE, ORACLE_KEY, SCAN, tolerance_for
from ._trajectory import Trajectory
from ._validate import check_finite, check_input, check_steps

__all__ = [
    "BITWISE",
    "IMPLEMENTATIONS",
    "LOOPS",
    "OPTIMIZERS",
    "ORACLE",
    "ORACLE_KEY",
    "REFERENCE",
    "SCAN",
    "Batch",
    "BiasAdderConfig",
    "Canonical",
    "CompareOptions",
    "CompareResult",
    "Divergence",
    "FlatStep",
    "Implementation",
    "ImplementationFactory",
    "JaxBiasAdder",
    "NativeLoop",
    "NumpyOptimizer",
    "OptimizerConfig",
    "PairResult",
    "Params",
    "State",
    "Tolerance",
    "TrainStep",
    "Trajectory",
    "as_batches",
    "bias_adder_loss",
    "bias_adder_oracle",
    "check_finite",
    "check_input",
    "check_steps",
    "compare",
    "load_factory",
    "make",
    "run_compare",
    "run_harness",
    "run_loop",
    "run_native",
    "run_scan",
    "seed_batch",
    "tolerance_for",
    "ulp_distance",
    "versions",
]
