"""The bias adder in Haiku (`hk.transform_with_state`)."""

from ._bias_adder import BiasAdderWithRunningMean, HaikuBiasAdder, make_forward

__all__ = ["BiasAdderWithRunningMean", "HaikuBiasAdder", "make_forward"]
