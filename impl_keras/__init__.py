"""Every built-in model in Keras 3 (JAX backend); the registry (`shared/_registry.py`) lists them.

Importing this package selects Keras's JAX backend before Keras is first imported, and
checks it after (see `_backend`).
"""

from . import _backend  # noqa: F401  (first: sets KERAS_BACKEND before keras is imported)
from ._adapter import KerasAdapter
from ._bias_adder import BiasAdderModel, BiasAdderWithRunningMean, KerasBiasAdder
from ._bias_stack import KerasBiasStack
from ._canonical import keras_canonical, keras_from_canonical
from ._decoder_cache import KerasDecoderCache
from ._mlp_bn import KerasMlpBn
from ._mlp_dropout import KerasMlpDropout
from ._optim import KERAS_DEFAULTS, keras_optimizer
from ._resnet_bn import KerasResNetBn

__all__ = [
    "KERAS_DEFAULTS",
    "BiasAdderModel",
    "BiasAdderWithRunningMean",
    "KerasAdapter",
    "KerasBiasAdder",
    "KerasBiasStack",
    "KerasDecoderCache",
    "KerasMlpBn",
    "KerasMlpDropout",
    "KerasResNetBn",
    "keras_canonical",
    "keras_from_canonical",
    "keras_optimizer",
]
