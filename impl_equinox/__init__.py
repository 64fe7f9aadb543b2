"""Every built-in model in Equinox (`eqx.nn.StateIndex`, explicit state); the registry
(`shared/_registry.py`) lists them."""

from ._bias_adder import BiasAdderWithRunningMean, EquinoxBiasAdder
from ._bias_stack import EquinoxBiasStack
from ._canonical import (
    equinox_canonical,
    equinox_from_canonical,
    equinox_state_canonical,
    equinox_state_from_canonical,
)
from ._decoder_cache import EquinoxDecoderCache
from ._layout import EquinoxLayout
from ._mlp_bn import EquinoxMlpBn
from ._mlp_dropout import EquinoxMlpDropout
from ._resnet_bn import EquinoxResNetBn

__all__ = [
    "BiasAdderWithRunningMean",
    "EquinoxBiasAdder",
    "EquinoxBiasStack",
    "EquinoxDecoderCache",
    "EquinoxLayout",
    "EquinoxMlpBn",
    "EquinoxMlpDropout",
    "EquinoxResNetBn",
    "equinox_canonical",
    "equinox_from_canonical",
    "equinox_state_canonical",
    "equinox_state_from_canonical",
]
