"""The models in Flax: Linen (mutable collections, `rngs=`) in `_linen/`, NNX in `_nnx/`.

Each API's sub-package holds the same files as every other `impl_*` package: its adapter
base (`_adapter`), its canonical helpers, native loop and variants, and one file per model.
"""

from ._linen._bias_adder import BiasAdderWithRunningMean as LinenBiasAdderWithRunningMean
from ._linen._bias_adder import LinenBiasAdder
from ._linen._bias_stack import LinenBiasStack
from ._linen._canonical import linen_canonical, linen_from_canonical
from ._linen._decoder_cache import LinenDecoderCache
from ._linen._layout import LinenLayout
from ._linen._mlp_bn import LinenMlpBn
from ._linen._mlp_dropout import LinenMlpDropout
from ._linen._resnet_bn import LinenResNetBn
from ._nnx._bias_adder import BiasAdderWithRunningMean as NNXBiasAdderWithRunningMean
from ._nnx._bias_adder import NNXBiasAdder
from ._nnx._bias_stack import NNXBiasStack
from ._nnx._canonical import nnx_canonical, nnx_from_canonical
from ._nnx._decoder_cache import NNXDecoderCache
from ._nnx._layout import NNXLayout
from ._nnx._mlp_bn import NNXMlpBn
from ._nnx._mlp_dropout import NNXMlpDropout
from ._nnx._resnet_bn import NNXResNetBn

__all__ = [
    "LinenBiasAdder",
    "LinenBiasAdderWithRunningMean",
    "LinenBiasStack",
    "LinenDecoderCache",
    "LinenLayout",
    "LinenMlpBn",
    "LinenMlpDropout",
    "LinenResNetBn",
    "NNXBiasAdder",
    "NNXBiasAdderWithRunningMean",
    "NNXBiasStack",
    "NNXDecoderCache",
    "NNXLayout",
    "NNXMlpBn",
    "NNXMlpDropout",
    "NNXResNetBn",
    "linen_canonical",
    "linen_from_canonical",
    "nnx_canonical",
    "nnx_from_canonical",
]
