"""The bias adder in Equinox (`eqx.nn.StateIndex`, an explicit state pytree)."""

from ._bias_adder import BiasAdderWithRunningMean, EquinoxBiasAdder

__all__ = ["BiasAdderWithRunningMean", "EquinoxBiasAdder"]
