"""The running-mean bias adder of Flax's *Managing Parameters and State* page.

One trainable `bias`, one non-trainable `mean` (an exponential moving average of the batch
mean), output `mean + bias`, trained on `loss = sum((x - y)**2)`. Here: its spec, its config,
its pure-JAX reference and its float64 oracle; the frameworks' versions are in `impl_*`.
"""

from ._config import MODEL, BiasAdderConfig, check_input
from ._data import as_batches, fixed_batch
from ._oracle import bias_adder_oracle
from ._reference import JaxBiasAdder, bias_adder_loss
from ._spec import SPEC, gaussian_shapes
from ._tolerances import DEVICES, KERAS_ADAM, KERAS_MOMENTUM, ORACLE, SCAN, TOLERANCES, tolerances

__all__ = [
    "DEVICES",
    "KERAS_ADAM",
    "KERAS_MOMENTUM",
    "MODEL",
    "ORACLE",
    "SCAN",
    "SPEC",
    "TOLERANCES",
    "BiasAdderConfig",
    "JaxBiasAdder",
    "as_batches",
    "bias_adder_loss",
    "bias_adder_oracle",
    "check_input",
    "fixed_batch",
    "gaussian_shapes",
    "tolerances",
]
