"""`resnet-bn`: a small residual network with BatchNorm on scikit-learn's digits, in every
framework.

Here: its spec, config, canonical names, layout and init, checks and tolerances; the data,
loss and `--defaults` drift report are mlp-bn's; the frameworks' versions are in `impl_*`.
"""

from ._config import (
    BLOCKS,
    MODEL,
    PADDING,
    ConvBn,
    ResNetBnConfig,
    canonical_init,
    canonical_params,
    canonical_state,
    check_canonical,
)
from ._spec import SPEC
from ._tolerances import (
    DEVICES,
    DEVICES_EVAL,
    EVAL,
    EVAL_ATOL,
    KERAS_MOMENTUM,
    LOSS,
    PARAMS,
    SCAN,
    SCAN_EVAL,
)

__all__ = [
    "BLOCKS",
    "DEVICES",
    "DEVICES_EVAL",
    "EVAL",
    "EVAL_ATOL",
    "KERAS_MOMENTUM",
    "LOSS",
    "MODEL",
    "PADDING",
    "PARAMS",
    "SCAN",
    "SCAN_EVAL",
    "SPEC",
    "ConvBn",
    "ResNetBnConfig",
    "canonical_init",
    "canonical_params",
    "canonical_state",
    "check_canonical",
]
