"""The small ResNet with BatchNorm as a model spec: digits, cross-entropy, aligned or default
BatchNorm."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shared.core import BenchShape, Evaluation, Implementation, ModelSpec, Option, Settings

from ..mlp_bn import KNOBS, Labelled, digits, metrics, minibatches, mlp_bn_inputs
from ..mlp_bn import mlp_bn_loss as loss
from ..mlp_bn import test_data as mlp_bn_test_data
from ._config import MODEL, ResNetBnConfig, canonical_init, canonical_params, canonical_state
from ._docs import DOCS
from ._drift import drift_report
from ._tolerances import EVAL, tolerances

STEPS, BATCH, LEARNING_RATE = 200, 64, 0.1
DATA = "sklearn.datasets.load_digits (stratified 75/25 split, seed 0), as 8x8x1 images"


def configure(settings: Settings) -> ResNetBnConfig:
    """Aligned BatchNorm settings, or (`--defaults`) each framework's own defaults."""
    return ResNetBnConfig(
        channels=(settings["channels"], 2 * settings["channels"]),
        momentum=settings["momentum"],
        native_defaults=KNOBS if settings.mode == "defaults" else (),
    )


def train_data(config: ResNetBnConfig, settings: Settings) -> Labelled:
    """mlp-bn's shuffled mini-batches of the training split, one per step (64 examples, 200
    steps, unless the settings say otherwise); each model reshapes the flat pixels."""
    d = digits()
    batch = BATCH if settings.batch is None else settings.batch
    steps = STEPS if settings.steps is None else settings.steps
    return minibatches(d.x_train, d.y_train, batch, steps, settings.seed, config.classes)


def test_data(config: ResNetBnConfig, settings: Settings) -> Labelled:
    """The whole test split, as one batch (mlp-bn's)."""
    return mlp_bn_test_data(config, settings)  # type: ignore[arg-type]  # reads no field


def initial(
    impl: Implementation, config: ResNetBnConfig, batches: Labelled, seed: int
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


def describe(config: ResNetBnConfig, settings: Settings, batches: Labelled) -> dict[str, Any]:
    d = digits()
    return {
        "features": config.features,
        "data": DATA,
        "data_dtype": "float32",
        "seed_faithful": False,  # kept for the JSON contract: a bias adder option
        "train_examples": len(d.y_train),
        "test_examples": len(d.y_test),
        "resnet": asdict(config),
    }


def bench_shapes(quick: bool, rng: np.random.Generator) -> list[BenchShape]:
    """Digits at the real width, and a larger random batch of 8x8 images (full runs only)."""
    sizes = [("tiny", 64, 8, 20, 3)]
    if not quick:
        sizes = [("tiny", 64, 8, 100, 15), ("large", 1024, 16, 3, 7)]
    shapes = []
    for size, batch, channels, k, samples in sizes:
        config = ResNetBnConfig(channels=(channels, 2 * channels))
        if size == "tiny":  # the real training data: digits mini-batches
            data = minibatches(digits().x_train, digits().y_train, batch, k, 0)
            x, labels = data.x, data.labels
        else:  # as many examples as wanted: random pixels and labels of the same shapes
            x = rng.random((k, batch, config.features), np.float32)
            labels = rng.integers(0, config.classes, (k, batch)).astype(np.int32)
        shapes.append(
            BenchShape(
                f"B{batch}xC{channels}",
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
    config_type=ResNetBnConfig,
    configure=configure,
    data=train_data,
    loss=loss,
    inputs=mlp_bn_inputs,
    # As mlp-bn's: Flax's BatchNorm defaults are the aligned settings' starting point.
    reference="flax_linen",
    reference_mode="aligned",
    tolerances=tolerances,
    params=canonical_params,
    state=canonical_state,
    init=initial,
    evaluation=Evaluation(test_data, metrics, EVAL),
    analyses=(drift_report,),
    options=(
        Option("--channels", int, 8, "stage 1's channels C; stage 2 has 2C (default: 8)"),
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
"""A stem convolution, two stages of two residual blocks, pooling and a dense head on
scikit-learn's 8x8 digits."""
