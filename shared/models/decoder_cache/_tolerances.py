"""The decoder's tolerances, each with the measured reason it is needed."""

from __future__ import annotations

from shared.core import OptimizerConfig, Tolerance, Tolerances
from shared.models.mlp_bn import ADAPTIVE

from ._config import DecoderCacheConfig

ACROSS = Tolerance(
    atol=2e-6,
    reason=(
        "different programs for the same float32 maths: Linen, NNX and Haiku attend with "
        "einsums (Flax scales the query by 1/sqrt(head_dim), Haiku the logits: the same "
        "values at head_dim 16, a power of 2), Keras through jax.nn.dot_product_attention, "
        "Equinox one sequence at a time under vmap; their gradients sum in other orders. "
        "Measured over 300 steps of sgd at lr 0.5: params at most 3.6e-07 apart (the ULP "
        "count is large only at biases that cross 0), and every framework's own loops bitwise"
    ),
)

EVAL = Tolerance(
    atol=5e-5,
    reason=(
        "held-out teacher-forced logits after 300 steps, across frameworks: the params' "
        "rounding differences through the model (measured 5.7e-06)"
    ),
)

DECODE = Tolerance(
    atol=1e-5,
    reason=(
        "one framework's cached decode (teacher-forced) against its own full causal forward "
        "pass, same params: a one-query matmul is another XLA program than the (T, T) one, "
        "not other maths (the masked slots weigh exactly 0 in both). Measured on 512 held-out "
        "sequences: 2.4e-07 at the canonical init (3.0e-07 Equinox), 3.8e-06 after 300 steps "
        "(5.7e-06 Equinox), where the logits reach 16.9 and one ULP is 1.9e-06; never bitwise"
    ),
)
"""One framework's cached decode against its own full causal forward pass."""

CACHE = Tolerance(
    atol=1e-5,
    reason=(
        "projected keys and values in the caches of two frameworks, token by token, greedy "
        "decode of 512 held-out prompts after 300 steps: the params' rounding differences "
        "(measured against Linen: at most 9.5e-07, Equinox; 7.2e-07 NNX and Keras, 6.6e-07 "
        "Haiku; at the canonical init Equinox's per-sequence Linear gives 1.8e-07, the others "
        "are bitwise); the index is an integer and equal"
    ),
)

LOGITS = Tolerance(
    atol=5e-5,
    reason=(
        "decoded logits across frameworks after 300 steps, as the held-out eval's bound "
        "(measured against Linen: at most 6.7e-06, Equinox; 5.7e-06 the others)"
    ),
)


ADAPTIVE_ACROSS = Tolerance(
    atol=5e-6,
    reason=(
        "as the sgd bound, under Adam, which divides each step by the root of its running "
        "second moment, so a gradient's rounding difference moves a param by more where the "
        "gradient is small; the attention's biases are dropped (the key's has a true "
        "gradient of 0, and Adam turned its rounding noise into +-lr steps: 5e-03 apart at "
        "step 1 with them). Measured over 300 steps of adam at lr 0.01: params at most "
        "1.4e-06 apart (Equinox), 7.2e-07 Haiku, 3.0e-07 NNX and Keras"
    ),
)

DEVICES = Tolerance(
    atol=2e-6,
    reason=(
        "data parallel against one device: each replica's gradient over its slice of the "
        "batch, averaged across replicas, sums in another order than one device's mean "
        "(measured over 300 steps on 2 CPU devices: Linen 2.4e-07 from its own 1-device "
        "run under shard_map and under jit; the model keeps no batch statistics, so there "
        "is nothing else to synchronise)"
    ),
)


def tolerances(config: DecoderCacheConfig, optimizer: OptimizerConfig) -> Tolerances:
    """Every framework's loops bitwise among themselves; frameworks within `ACROSS`;
    a data-parallel run within `DEVICES` of one device."""
    devices = {"shard_map": DEVICES, "jit": DEVICES, "unsynced": DEVICES}
    across = ADAPTIVE_ACROSS if optimizer.name in ADAPTIVE else ACROSS
    return Tolerances(across=across, devices=devices)
