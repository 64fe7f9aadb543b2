"""The bias adder as a model spec: the Flax page's data, loss, reference, oracle, tolerances."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from shared.core import BenchShape, ModelSpec, Option, Settings

from ._config import MODEL, BiasAdderConfig
from ._data import as_batches, fixed_batch
from ._docs import DOCS
from ._oracle import bias_adder_oracle
from ._reference import bias_adder_loss
from ._tolerances import tolerances

FEATURES, BATCH, LEARNING_RATE, STEPS = 4, 8, 0.02, 10  # the Flax page's setup


def configure(settings: Settings) -> BiasAdderConfig:
    """The config for a run; with `--data`, the feature size comes from the data."""
    features = settings["features"]
    data = settings.data
    if data is not None:
        if features is not None:
            raise ValueError("--features comes from --data; do not give both")
        if settings.batch is not None:
            raise ValueError("--batch comes from --data; do not give both")
        features = np.shape(data)[-1] if np.ndim(data) in (2, 3) else FEATURES
    return BiasAdderConfig(
        FEATURES if features is None else features,
        settings["momentum"],
        settings["keepdims"],
    )


def default_data(config: BiasAdderConfig, settings: Settings) -> np.ndarray:
    """The Flax page's loop: one fixed standard normal batch, reused at every step."""
    batch = BATCH if settings.batch is None else settings.batch
    steps = STEPS if settings.steps is None else settings.steps
    return as_batches("data", fixed_batch(batch, config.features, settings.seed), config, steps)


def user_data(config: BiasAdderConfig, data: np.ndarray, settings: Settings) -> np.ndarray:
    """`--data`: (batch, D) reused at every step, or (steps, batch, D), one batch per step."""
    steps = settings.steps
    if steps is None and np.ndim(data) != 3:
        steps = STEPS
    return as_batches("data", data, config, steps)


def describe(config: BiasAdderConfig, settings: Settings, batches: Any) -> dict[str, Any]:
    # `seed_faithful` is the JSON contract's old name of `keepdims`, kept for its readers.
    return {"features": config.features, "seed_faithful": config.keepdims}


def gaussian_shapes(
    sizes: Sequence[tuple[str, int, int, int, int]],
    config: Callable[[int], Any],
    rng: np.random.Generator,
    prefix: str = "",
) -> list[BenchShape]:
    """Bench shapes of standard normal batches, timed against pure JAX's native loop.

    **Arguments:**

    - `sizes`: `(size, batch, features, steps per sample, samples)` per shape.
    - `config`: features -> the model's config at that width.
    - `rng`: draws the batches.
    - `prefix`: put before each label (`"L4 "`).
    """
    return [
        BenchShape(
            f"{prefix}B{b}xD{d}",
            size,
            config(d),
            rng.standard_normal((k, b, d), np.float32),
            samples,
            ("jax", "native"),
        )
        for size, b, d, k, samples in sizes
    ]


def bench_shapes(quick: bool, rng: np.random.Generator) -> list[BenchShape]:
    """A tiny, dispatch-bound shape and a large, memory-bound one."""
    sizes = [
        ("tiny", 8, 4, 50, 7) if quick else ("tiny", 8, 4, 300, 31),
        ("large", 1024, 1024, 2, 3) if quick else ("large", 4096, 4096, 3, 15),
    ]
    return gaussian_shapes(sizes, BiasAdderConfig, rng)


SPEC = ModelSpec(
    name=MODEL,
    config_type=BiasAdderConfig,
    configure=configure,
    data=default_data,
    user_data=user_data,
    loss=bias_adder_loss,
    reference="jax",
    oracle=bias_adder_oracle,
    tolerances=tolerances,
    params=("bias",),
    state=("mean",),
    options=(
        Option(
            "--features",
            int,
            None,
            "feature size D (default: 4, or the data's; --data takes (batch, D), reused "
            "every step, or (steps, batch, D))",
        ),
        Option("--momentum", float, 0.9, "the running mean's EMA momentum (default: 0.9)"),
        Option(
            "--keepdims",
            None,
            False,
            "keep the Flax page's keepdims=True: the state turns into (1, D)",
            aliases=("--seed-faithful",),
        ),
    ),
    steps=STEPS,
    batch=BATCH,
    learning_rate=LEARNING_RATE,
    describe=describe,
    bench=bench_shapes,
    docs=DOCS,
    loss_reduction="sum",  # sum((x - y)**2) over the batch: replicas' losses add up
    cross_device=lambda config, axis: replace(config, axis_name=axis),
)
"""The running-mean bias adder of Flax's *Managing Parameters and State* page."""
