"""`mlp-bn`: Dense, BatchNorm, relu, Dense on scikit-learn's digits, in every framework.

Here: its spec, config, canonical names and init, data, loss, checks, tolerances and the
`--defaults` drift report; the frameworks' versions are in `impl_*`.
"""

from ._config import (
    CANONICAL_PARAMS,
    CANONICAL_STATE,
    KNOBS,
    MODEL,
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
from ._digits import Digits, load_digits_split, minibatches
from ._drift import Drift, drift_report
from ._spec import SPEC, digits, metrics, test_data, train_data
from ._tolerances import (
    ADAM_LOSS,
    ADAM_PARAMS,
    ADAPTIVE,
    DEVICES,
    DEVICES_EVAL,
    EVAL,
    EVAL_ATOL,
    KERAS_MOMENTUM,
    LOSS,
    PARAMS,
    tolerances,
)

__all__ = [
    "ADAM_LOSS",
    "ADAM_PARAMS",
    "ADAPTIVE",
    "CANONICAL_PARAMS",
    "CANONICAL_STATE",
    "DEVICES",
    "DEVICES_EVAL",
    "EVAL",
    "EVAL_ATOL",
    "KERAS_MOMENTUM",
    "KNOBS",
    "LOSS",
    "MODEL",
    "PARAMS",
    "SATURATED_COUNT",
    "SPEC",
    "Digits",
    "Drift",
    "Labelled",
    "MlpBnConfig",
    "canonical_init",
    "check_canonical",
    "check_features",
    "check_labels",
    "digits",
    "drift_report",
    "load_digits_split",
    "metrics",
    "minibatches",
    "mlp_bn_inputs",
    "mlp_bn_loss",
    "test_data",
    "tolerances",
    "train_data",
]
