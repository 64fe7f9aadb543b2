"""The bias adder, the MLP with BatchNorm and the MLP with dropout in Flax: Linen (mutable
collections, `rngs=`) and NNX."""

from ._bias_stack_linen import LinenBiasStack
from ._bias_stack_nnx import NNXBiasStack
from ._canonical import linen_canonical, linen_from_canonical, nnx_canonical, nnx_from_canonical
from ._linen import BiasAdderWithRunningMean as LinenBiasAdderWithRunningMean
from ._linen import LinenBiasAdder
from ._mlp_bn_linen import LinenMlpBn
from ._mlp_bn_nnx import NNXMlpBn
from ._mlp_dropout_linen import LinenMlpDropout
from ._mlp_dropout_nnx import NNXMlpDropout
from ._nnx import BiasAdderWithRunningMean as NNXBiasAdderWithRunningMean
from ._nnx import NNXBiasAdder

__all__ = [
    "LinenBiasAdder",
    "LinenBiasAdderWithRunningMean",
    "LinenBiasStack",
    "LinenMlpBn",
    "LinenMlpDropout",
    "NNXBiasAdder",
    "NNXBiasAdderWithRunningMean",
    "NNXBiasStack",
    "NNXMlpBn",
    "NNXMlpDropout",
    "linen_canonical",
    "linen_from_canonical",
    "nnx_canonical",
    "nnx_from_canonical",
]
