"""The bias adder and the MLP with BatchNorm in Flax: Linen (mutable collections) and NNX."""

from ._canonical import linen_canonical, linen_from_canonical, nnx_canonical, nnx_from_canonical
from ._linen import BiasAdderWithRunningMean as LinenBiasAdderWithRunningMean
from ._linen import LinenBiasAdder
from ._mlp_bn_linen import LinenMlpBn
from ._mlp_bn_nnx import NNXMlpBn
from ._nnx import BiasAdderWithRunningMean as NNXBiasAdderWithRunningMean
from ._nnx import NNXBiasAdder

__all__ = [
    "LinenBiasAdder",
    "LinenBiasAdderWithRunningMean",
    "LinenMlpBn",
    "NNXBiasAdder",
    "NNXBiasAdderWithRunningMean",
    "NNXMlpBn",
    "linen_canonical",
    "linen_from_canonical",
    "nnx_canonical",
    "nnx_from_canonical",
]
