"""The decoder's tolerances, each with the measured reason it is needed."""

from __future__ import annotations

from shared.core import OptimizerConfig, Tolerance, Tolerances

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
    atol=1e-6,
    reason=(
        "one framework's cached decode against its own full causal forward pass, same "
        "params: the one-query matmuls and the masked softmax over the cache's length are "
        "other XLA programs than the (T, T) ones, not other maths (masked slots weigh exactly "
        "0); measured at most 2.4e-07 (Equinox), 1.5e-07 in the others, at the canonical init"
    ),
)
"""One framework's cached decode against its own full causal forward pass."""

CACHE = Tolerance(
    atol=1e-5,
    reason=(
        "projected keys and values in the caches of two frameworks after training: the "
        "params' rounding differences (Equinox's per-sequence Linear adds 1.8e-07 at init)"
    ),
)

LOGITS = Tolerance(
    atol=5e-5,
    reason="decoded logits across frameworks after training, as the held-out eval's bound",
)


def tolerances(config: DecoderCacheConfig, optimizer: OptimizerConfig) -> Tolerances:
    """Every framework's loops bitwise among themselves; frameworks within `ACROSS`."""
    return Tolerances(across=ACROSS)
