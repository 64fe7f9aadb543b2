"""jax-state-rosetta's harness: protocol, reference, oracle, training loops and comparison.

Two models: the running-mean bias adder, and `mlp-bn` (an MLP with each framework's own
BatchNorm, trained on scikit-learn's digits).

Imports JAX, optax and NumPy only; frameworks are reached through the registry.
"""

from ._compare import BITWISE, Divergence, PairResult, Tolerance, compare, ulp_distance
from ._data import as_batches, seed_batch
from ._digits import Digits, load_digits_split, minibatches
from ._harness import LOOPS, FlatStep, TrainStep, run_harness, run_loop, run_native, run_scan
from ._mlp_bn import (
    CANONICAL_PARAMS,
    CANONICAL_STATE,
    KNOBS,
    SATURATED_COUNT,
    Labelled,
    MlpBnConfig,
    canonical_init,
    check_canonical,
    check_features,
    check_labels,
    mlp_bn_inputs,
    mlp_bn_loss,
)
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
from ._registry import (
    IMPLEMENTATIONS,
    MLP_BN_IMPLEMENTATIONS,
    MLP_BN_REFERENCE,
    MODELS,
    REFERENCE,
    load_factory,
    make,
    versions,
)
from ._run import CompareOptions, CompareResult, run_compare
from ._tolerances import (
    MLP_BN_ADAM_LOSS,
    MLP_BN_ADAM_PARAMS,
    MLP_BN_EVAL_ATOL,
    MLP_BN_LOSS,
    MLP_BN_PARAMS,
    ORACLE,
    ORACLE_KEY,
    SCAN,
    tolerance_for,
)
from ._trajectory import Trajectory
from ._validate import check_finite, check_input, check_steps

__all__ = [
    "BITWISE",
    "CANONICAL_PARAMS",
    "CANONICAL_STATE",
    "IMPLEMENTATIONS",
    "KNOBS",
    "LOOPS",
    "MLP_BN_ADAM_LOSS",
    "MLP_BN_ADAM_PARAMS",
    "MLP_BN_EVAL_ATOL",
    "MLP_BN_IMPLEMENTATIONS",
    "MLP_BN_LOSS",
    "MLP_BN_PARAMS",
    "MLP_BN_REFERENCE",
    "MODELS",
    "OPTIMIZERS",
    "ORACLE",
    "ORACLE_KEY",
    "REFERENCE",
    "SATURATED_COUNT",
    "SCAN",
    "Batch",
    "BiasAdderConfig",
    "Canonical",
    "CompareOptions",
    "CompareResult",
    "Digits",
    "Divergence",
    "FlatStep",
    "Implementation",
    "ImplementationFactory",
    "JaxBiasAdder",
    "Labelled",
    "MlpBnConfig",
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
    "canonical_init",
    "check_canonical",
    "check_features",
    "check_finite",
    "check_input",
    "check_labels",
    "check_steps",
    "compare",
    "load_digits_split",
    "load_factory",
    "make",
    "minibatches",
    "mlp_bn_inputs",
    "mlp_bn_loss",
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
