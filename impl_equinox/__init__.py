"""The bias adder and the MLP with BatchNorm in Equinox (`eqx.nn.StateIndex`, explicit state)."""

from ._bias_adder import BiasAdderWithRunningMean, EquinoxBiasAdder
from ._mlp_bn import EquinoxMlpBn

__all__ = ["BiasAdderWithRunningMean", "EquinoxBiasAdder", "EquinoxMlpBn"]
