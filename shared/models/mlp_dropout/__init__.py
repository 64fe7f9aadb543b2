"""`mlp-dropout`: Dense, relu, Dropout, Dense on scikit-learn's digits, in every framework.

Randomness is state too: here are its spec (aligned and native keys), config, canonical
names and init, the per-layer key of aligned mode, the statistical check of native mode and
the key provenance tracer; the frameworks' versions are in `impl_*`.
"""

from ._config import (
    CANONICAL_PARAMS,
    KEYS,
    MODEL,
    MlpDropoutConfig,
    canonical_init,
    check_params,
    dropout_key,
)
from ._provenance import KeyLog, key_provenance, recording_keys
from ._seeds import final_accuracies, seed_distributions
from ._spec import SPEC
from ._tolerances import (
    ALIGNED,
    DEVICES_JIT,
    DEVICES_SHARD_MAP,
    EQUINOX_ALIGNED,
    EVAL,
    KERAS_MOMENTUM,
    NATIVE_ACROSS,
    tolerances,
)

__all__ = [
    "ALIGNED",
    "CANONICAL_PARAMS",
    "DEVICES_JIT",
    "DEVICES_SHARD_MAP",
    "EQUINOX_ALIGNED",
    "EVAL",
    "KERAS_MOMENTUM",
    "KEYS",
    "MODEL",
    "NATIVE_ACROSS",
    "SPEC",
    "KeyLog",
    "MlpDropoutConfig",
    "canonical_init",
    "check_params",
    "dropout_key",
    "final_accuracies",
    "key_provenance",
    "recording_keys",
    "seed_distributions",
    "tolerances",
]
