"""The bias adder and the MLP with BatchNorm in Haiku (`hk.transform_with_state`)."""

from ._bias_adder import BiasAdderWithRunningMean, HaikuBiasAdder, make_forward
from ._mlp_bn import HaikuMlpBn

__all__ = ["BiasAdderWithRunningMean", "HaikuBiasAdder", "HaikuMlpBn", "make_forward"]
