"""Every built-in model in Haiku (`hk.transform_with_state`); the registry
(`shared/_registry.py`) lists them."""

from ._bias_adder import BiasAdderWithRunningMean, HaikuBiasAdder, make_forward
from ._bias_stack import HaikuBiasStack
from ._canonical import haiku_canonical, haiku_from_canonical
from ._decoder_cache import HaikuDecoderCache
from ._layout import HaikuLayout
from ._mlp_bn import HaikuMlpBn
from ._mlp_dropout import HaikuMlpDropout
from ._resnet_bn import HaikuResNetBn

__all__ = [
    "BiasAdderWithRunningMean",
    "HaikuBiasAdder",
    "HaikuBiasStack",
    "HaikuDecoderCache",
    "HaikuLayout",
    "HaikuMlpBn",
    "HaikuMlpDropout",
    "HaikuResNetBn",
    "haiku_canonical",
    "haiku_from_canonical",
    "make_forward",
]
