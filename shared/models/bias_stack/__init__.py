"""`bias-stack`: L blocks in sequence, each a D x D Dense layer and a running-mean bias
adder, a depth family for benchmarks.

Block l (0-based) has a trainable `kernel` W_l (D, D), no Dense bias, and the bias adder of
Flax's *Managing Parameters and State* page, with its own trainable `bias` (D,) and
non-trainable running `mean` (D,). With `h_0 = x` (batch, D), block l:

- applies its Dense layer, `z_l = h_l @ W_l` (W_l laid out (in, out));
- in training, updates its bias adder's mean from `z_l`'s batch mean,
  `mean_l <- m * mean_l + (1.0 - m) * batch_mean(z_l)` (m a Python float, so that
  `1.0 - m` is rounded once), and in eval leaves it unchanged;
- takes the bias adder's output `a_l = mean_l + bias_l` (D,) on `z_l`,
- and subtracts it: `h_{l+1} = z_l - a_l`.

The output is `h_L` (batch, D); the loss is the bias adder's on it, `sum((x - h_L)**2)`,
summed over the batch. The gradient also flows through each updated mean (`batch_mean(z_l)`
depends on every parameter below), as every framework's autodiff does; the float64 oracle
writes it out. Every kernel starts at the identity in every framework (no randomness, so
all frameworks start from the same values), every bias and mean at zero: at init the forward
pass is the centring stack `h_{l+1} = h_l - a_l`. Canonical names: params
`layers.{l}.kernel` (in, out) and `layers.{l}.bias`, state `layers.{l}.mean`.

Why the Dense layers: with only elementwise ops and batch means between layers, XLA fuses the
chain `h_l` into every consumer and recomputes it there, so the compiled step grows as
L**2 (at depth 64: 6241 subtracts, 44k HLO lines, 22 s to compile one step at B8xD4). XLA
does not fuse through a dot, so each block's `z_l` is computed once: the optimised train step
(`TrainStep` under `jax.jit`, sgd, B8xD4, jax 0.10.2 on XLA:CPU) holds 1066 instructions
(21 subtracts, 47 dots) at depth 16 and 4186 (69 subtracts, 191 dots) at depth 64, 3.9x
for 4x the depth, and compiles in about 0.2 s and 0.45 s, the same in every framework.

The loss's curvature grows with the depth (each kernel moves `h_L` by about `h @ delta_W`),
so the default learning rate is 1e-3, not the bias adder's 0.02 (at 0.02 sgd overflows
within 10 steps at depth 64, sgd with momentum 0.9 within 50 from depth 2). At 1e-3 with the
default B8xD4 fixed batch, sgd, momentum, adam and adamw stay finite for 1000 steps at every
depth up to 64. A larger batch takes larger steps (the loss is a sum): at B16, sgd at depth
64 climbs to a loss of 61 in 200 steps.

Every framework's version composes that framework's own Dense layer and bias adder module L
times, the way the framework holds a sequence of submodules (`impl_*`, files
`_bias_stack.py`), so that `state-rosetta bench --depth` can measure each framework's
per-layer overhead. Here: its spec, config, pure-JAX reference, float64 oracle and
tolerances.
"""

from ._config import (
    MODEL,
    BiasStackConfig,
    canonical_params,
    canonical_state,
    check_stack_input,
)
from ._oracle import bias_stack_oracle
from ._reference import JaxBiasStack, bias_stack_loss
from ._spec import SPEC, bench_depth
from ._tolerances import (
    DEVICES,
    EQUINOX,
    KERAS_ADAM,
    KERAS_MOMENTUM,
    SCAN,
    oracle_tolerance,
    tolerances,
)

__all__ = [
    "DEVICES",
    "EQUINOX",
    "KERAS_ADAM",
    "KERAS_MOMENTUM",
    "MODEL",
    "SCAN",
    "SPEC",
    "BiasStackConfig",
    "JaxBiasStack",
    "bench_depth",
    "bias_stack_loss",
    "bias_stack_oracle",
    "canonical_params",
    "canonical_state",
    "check_stack_input",
    "oracle_tolerance",
    "tolerances",
]
