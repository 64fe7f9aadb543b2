"""The MLP with BatchNorm as a model spec: digits, cross-entropy, aligned or default BatchNorm."""

from __future__ import annotations

import functools
from dataclasses import asdict, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shared.core import BenchShape, Evaluation, Implementation, ModelSpec, Option, Settings

from ._config import (
    CANONICAL_PARAMS,
    CANONICAL_STATE,
    KNOBS,
    MODEL,
    Labelled,
    MlpBnConfig,
    canonical_init,
    mlp_bn_inputs,
    mlp_bn_loss,
)
from ._digits import Digits, load_digits_split, minibatches
from ._docs import DOCS
from ._drift import drift_report
from ._tolerances import ADAPTIVE, EVAL, tolerances

STEPS, BATCH, LEARNING_RATE = 200, 64, 0.1
DATA = "sklearn.datasets.load_digits (stratified 75/25 split, seed 0)"


@functools.cache
def digits() -> Digits:
    """The fixed train/test split, loaded once per process."""
    return load_digits_split()


def configure(settings: Settings) -> MlpBnConfig:
    """Aligned BatchNorm settings, or (`--defaults`) each framework's own defaults."""
    return MlpBnConfig(
        hidden=settings["hidden"],
        momentum=settings["momentum"],
        dense1_bias=settings.optimizer not in ADAPTIVE,
        native_defaults=KNOBS if settings.mode == "defaults" else (),
    )


def train_data(config: MlpBnConfig, settings: Settings) -> Labelled:
    """Shuffled mini-batches of the training split, one per step (64 examples, 200 steps,
    unless the settings say otherwise)."""
    d = digits()
    batch = BATCH if settings.batch is None else settings.batch
    steps = STEPS if settings.steps is None else settings.steps
    return minibatches(d.x_train, d.y_train, batch, steps, settings.seed, config.classes)


def test_data(config: MlpBnConfig, settings: Settings) -> Labelled:
    """The whole test split, as one batch."""
    d = digits()
    return Labelled(jnp.asarray(d.x_test), jnp.asarray(d.y_test))


def metrics(logits: np.ndarray, batch: Labelled) -> dict[str, float]:
    """Test loss and accuracy."""
    loss = float(mlp_bn_loss(jnp.asarray(logits), batch))
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == np.asarray(batch.labels)))
    return {"loss": loss, "accuracy": accuracy}


def initial(
    impl: Implementation, config: MlpBnConfig, batches: Labelled, seed: int
) -> tuple[Any, Any]:
    """One canonical init, loaded into every framework; the framework's own initial running
    statistics instead when the config keeps them (`"state"`)."""
    params, state = canonical_init(config, seed)
    native_params, native_state = impl.from_canonical(
        {k: jnp.asarray(v) for k, v in params.items()},
        {k: jnp.asarray(v) for k, v in state.items()},
    )
    if config.keeps("state"):
        _, native_state = impl.init(jax.random.key(seed), jnp.asarray(batches.x[0]))
    return native_params, native_state


def describe(config: MlpBnConfig, settings: Settings, batches: Labelled) -> dict[str, Any]:
    d = digits()
    return {
        "features": config.features,
        "data": DATA,
        "data_dtype": "float32",
        "seed_faithful": False,  # kept for the JSON contract: a bias adder option
        "train_examples": len(d.y_train),
        "test_examples": len(d.y_test),
        "mlp": asdict(config),
    }


def canonical_params(config: MlpBnConfig) -> tuple[str, ...]:
    return tuple(k for k in CANONICAL_PARAMS if config.dense1_bias or k != "dense1.bias")


def bench_shapes(quick: bool, rng: np.random.Generator) -> list[BenchShape]:
    """Digits at the real width, and a large random batch (full runs only: compiles dominate)."""
    sizes = [("tiny", 64, 32, 20, 3)]
    if not quick:
        sizes = [("tiny", 64, 32, 300, 31), ("large", 4096, 512, 3, 15)]
    shapes = []
    for size, batch, hidden, k, samples in sizes:
        config = MlpBnConfig(hidden=hidden)
        if size == "tiny":  # the real training data: digits mini-batches
            data = minibatches(digits().x_train, digits().y_train, batch, k, 0)
            x, labels = data.x, data.labels
        else:  # as many examples as wanted: random features and labels of the same shapes
            x = rng.random((k, batch, config.features), np.float32)
            labels = rng.integers(0, config.classes, (k, batch)).astype(np.int32)
        shapes.append(
            BenchShape(
                f"B{batch}xH{hidden}",
                size,
                config,
                Labelled(jnp.asarray(x), jnp.asarray(labels, jnp.int32)),
                samples,
                ("haiku", "harness-pytree"),
            )
        )
    return shapes


SPEC = ModelSpec(
    name=MODEL,
    config_type=MlpBnConfig,
    configure=configure,
    data=train_data,
    loss=mlp_bn_loss,
    inputs=mlp_bn_inputs,
    # Flax's BatchNorm defaults are the aligned settings' starting point (its variance formula
    # is also Haiku's), and NNX matches it bitwise.
    reference="flax_linen",
    reference_mode="aligned",
    tolerances=tolerances,
    params=canonical_params,
    state=CANONICAL_STATE,
    init=initial,
    evaluation=Evaluation(test_data, metrics, EVAL),
    analyses=(drift_report,),
    options=(
        Option("--hidden", int, 32, "hidden width H (default: 32)"),
        Option("--momentum", float, 0.9, "BatchNorm's EMA momentum when aligned (default: 0.9)"),
    ),
    modes=("aligned", "defaults"),
    mode_help={
        "aligned": "set every BatchNorm to the same settings; all must agree (the default)",
        "defaults": "each framework's own BatchNorm defaults; report the drift and its cause",
    },
    steps=STEPS,
    batch=BATCH,
    learning_rate=LEARNING_RATE,
    describe=describe,
    bench=bench_shapes,
    docs=DOCS,
    cross_device=lambda config, axis: replace(config, axis_name=axis),
)
"""Dense(64 -> H), BatchNorm, relu, Dense(H -> 10), on scikit-learn's digits."""
