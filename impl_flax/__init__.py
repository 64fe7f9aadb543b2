"""The bias adder in Flax: Linen (mutable collections) and NNX (`nnx.BatchStat`)."""

from ._linen import BiasAdderWithRunningMean as LinenBiasAdderWithRunningMean
from ._linen import LinenBiasAdder
from ._nnx import BiasAdderWithRunningMean as NNXBiasAdderWithRunningMean
from ._nnx import NNXBiasAdder

__all__ = [
    "LinenBiasAdder",
    "LinenBiasAdderWithRunningMean",
    "NNXBiasAdder",
    "NNXBiasAdderWithRunningMean",
]
