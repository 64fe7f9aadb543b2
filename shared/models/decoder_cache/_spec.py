"""The decoder with a key/value cache as a model spec: digit reversal, teacher forcing,
and greedy decodes through every framework's cache after training."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import jax.numpy as jnp
import numpy as np

from shared.core import (
    AnalysisResult,
    BenchShape,
    Evaluation,
    Implementation,
    ModelSpec,
    Option,
    Settings,
)
from shared.models.mlp_bn import ADAPTIVE

from ._config import (
    MODEL,
    DecoderCacheConfig,
    Sequences,
    canonical_init,
    decoder_inputs,
    decoder_loss,
    make_sequences,
)
from ._decode import decode, first_divergence, largest_differences, sequence_accuracy
from ._docs import DOCS
from ._tolerances import CACHE, EVAL, LOGITS, tolerances

STEPS, BATCH, LEARNING_RATE = 300, 64, 0.5  # sgd: measured >= 0.95 in every framework
TEST_ROWS, TEST_SEED = 512, 10_000  # held-out sequences, from their own generator
DATA = "synthetic digit reversal [BOS, d1..dn, SEP, dn..d1], NumPy generator (seed)"


def configure(settings: Settings) -> DecoderCacheConfig:
    return DecoderCacheConfig(
        digits=settings["digits"],
        d_model=settings["d_model"],
        heads=settings["heads"],
        attn_bias=settings.optimizer not in ADAPTIVE,  # see DecoderCacheConfig.attn_bias
    )


def train_data(config: DecoderCacheConfig, settings: Settings) -> Sequences:
    """One batch of fresh random sequences per step (from the run's seed)."""
    batch = BATCH if settings.batch is None else settings.batch
    steps = STEPS if settings.steps is None else settings.steps
    rows = make_sequences(config, steps * batch, settings.seed)
    return Sequences(jnp.asarray(rows.reshape(steps, batch, -1)))


def test_data(config: DecoderCacheConfig, settings: Settings) -> Sequences:
    """Held-out sequences: another generator's (a fixed seed far from the runs' seeds)."""
    return Sequences(jnp.asarray(make_sequences(config, TEST_ROWS, TEST_SEED)))


def metrics(logits: np.ndarray, batch: Sequences) -> dict[str, float]:
    """Teacher-forced loss and element accuracy on the reversed half."""
    tokens = np.asarray(batch.tokens)
    n = tokens.shape[-1] // 2 - 1
    loss = float(decoder_loss(jnp.asarray(logits), batch))
    accuracy = float(np.mean(np.argmax(logits[:, n + 1 :], -1) == tokens[:, n + 2 :]))
    return {"loss": loss, "accuracy": accuracy}


def initial(
    impl: Implementation, config: DecoderCacheConfig, batches: Sequences, seed: int
) -> tuple[Any, Any]:
    """One canonical init, loaded into every framework; no training state."""
    params = {k: jnp.asarray(v) for k, v in canonical_init(config, seed).items()}
    return impl.from_canonical(params, {})


def describe(config: DecoderCacheConfig, settings: Settings, batches: Sequences) -> dict[str, Any]:
    return {
        "data": DATA,
        "data_dtype": "int32",
        "test_examples": TEST_ROWS,
        "decoder": {**asdict(config), "length": config.length},
    }


def greedy_decodes(context: Any) -> AnalysisResult | None:
    """Each implementation's final params, decoded greedily through its own cache on the
    held-out prompts: its accuracy, and where its logits or cache first leave the
    reference's (token, leaf, slot)."""
    config: DecoderCacheConfig = context.config
    tokens = np.asarray(test_data(config, context.settings).tokens)
    inputs = tokens[:, :-1]
    runs = {}
    for impl in context.impls:
        if not hasattr(impl, "decode_step"):
            continue
        trajectory = context.trajectories.get(f"{impl.name}/harness")
        if trajectory is None or not trajectory.params:  # summaries kept: train it again
            trajectory = context.train(impl, config, "harness")
        final = {k: jnp.asarray(v[-1]) for k, v in trajectory.params.items()}
        params, _ = impl.from_canonical(final, {})
        runs[impl.name] = decode(impl, params, inputs, greedy=True)
    if not runs:
        return None
    reference = context.reference.split("/")[0]
    ref = runs.get(reference, next(iter(runs.values())))
    rows, payload, ok = [], {}, True
    for name, run in runs.items():
        accuracy = sequence_accuracy(config, run, tokens)
        where = None if run is ref else first_divergence(ref, run, CACHE, LOGITS)
        same = bool(np.array_equal(run.tokens, ref.tokens))
        ok = ok and same
        payload[name] = {
            "accuracy": accuracy,
            "same_decode": same,
            "divergence": None if where is None else where.describe(),
            "largest": largest_differences(ref, run),
        }
        rows.append(
            [
                name,
                f"{accuracy:.4f}",
                "yes" if same else "NO",
                "-" if where is None else where.describe(),
            ]
        )
    return AnalysisResult(
        key="decode",
        payload=payload,
        title="Greedy decodes through each framework's cache (held-out prompts)",
        head=["implementation", "accuracy", "same tokens", "cache/logits vs reference"],
        rows=rows,
        notes=[f"cache leaves within: {CACHE.reason}", f"logits within: {LOGITS.reason}"],
        ok=ok,
    )


def bench_shapes(quick: bool, rng: np.random.Generator) -> list[BenchShape]:
    """The task at its real size, and a wider model on a larger batch (full runs only)."""
    sizes = [("tiny", 64, 32, 20, 3)]
    if not quick:
        sizes = [("tiny", 64, 32, 100, 15), ("large", 512, 128, 3, 7)]
    shapes = []
    for size, batch, width, k, samples in sizes:
        config = DecoderCacheConfig(d_model=width)
        seed = int(rng.integers(0, 2**31 - 1))  # the sequences, like the runs', from a seed
        rows = make_sequences(config, k * batch, seed).reshape(k, batch, -1)
        shapes.append(
            BenchShape(
                f"B{batch}xD{width}",
                size,
                config,
                Sequences(jnp.asarray(rows)),
                samples,
                ("haiku", "harness-pytree"),
            )
        )
    return shapes


SPEC = ModelSpec(
    name=MODEL,
    config_type=DecoderCacheConfig,
    configure=configure,
    data=train_data,
    loss=decoder_loss,
    inputs=decoder_inputs,
    reference="flax_linen",
    tolerances=tolerances,
    params=lambda config: tuple(config.shapes()),
    state=(),
    init=initial,
    evaluation=Evaluation(test_data, metrics, EVAL),
    analyses=(greedy_decodes,),
    options=(
        Option(
            "--digits", int, 5, "digits per sequence n; the model sees 2n + 1 tokens (default: 5)"
        ),
        Option("--d-model", int, 32, "embedding width (default: 32)"),
        Option("--heads", int, 2, "attention heads (default: 2)"),
    ),
    steps=STEPS,
    batch=BATCH,
    learning_rate=LEARNING_RATE,
    describe=describe,
    bench=bench_shapes,
    docs=DOCS,
)
"""Token + position embedding, causal self-attention with a residual, a dense head."""
