"""`decoder-cache`: a one-layer causal self-attention decoder and its key/value cache, in
every framework.

Here: its spec, config, canonical names and init, data, loss, the decode driver (one token
at a time through an implementation's cache), the cache comparison and tolerances; the
frameworks' versions are in `impl_*`.
"""

from ._config import (
    BOS,
    CANONICAL_CACHE,
    CANONICAL_PARAMS,
    DIGITS,
    MODEL,
    SEP,
    DecoderCacheConfig,
    Sequences,
    canonical_init,
    check_params,
    check_state,
    check_tokens,
    decoder_inputs,
    decoder_loss,
    make_sequences,
    reversal,
)

__all__ = [
    "BOS",
    "CANONICAL_CACHE",
    "CANONICAL_PARAMS",
    "DIGITS",
    "MODEL",
    "SEP",
    "DecoderCacheConfig",
    "Sequences",
    "canonical_init",
    "check_params",
    "check_state",
    "check_tokens",
    "decoder_inputs",
    "decoder_loss",
    "make_sequences",
    "reversal",
]

from ._decode import Decoded, Divergence, decode, first_divergence, predictions, sequence_accuracy
from ._spec import SPEC, test_data, train_data
from ._tolerances import CACHE, DECODE, EVAL, LOGITS

__all__ += [
    "CACHE",
    "DECODE",
    "EVAL",
    "LOGITS",
    "SPEC",
    "Decoded",
    "Divergence",
    "decode",
    "first_divergence",
    "predictions",
    "sequence_accuracy",
    "test_data",
    "train_data",
]
