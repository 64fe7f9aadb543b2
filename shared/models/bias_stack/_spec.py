"""The bias stack as a model spec: the bias adder's data and loss, L blocks deep."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np

from shared.core import BenchShape, ModelSpec, Option, Settings
from shared.models.bias_adder import as_batches, fixed_batch, gaussian_shapes

from ._config import MODEL, BiasStackConfig, canonical_params, canonical_state
from ._oracle import bias_stack_oracle
from ._reference import bias_stack_loss
from ._tolerances import tolerances

DEPTH, FEATURES, BATCH, STEPS = 4, 4, 8, 10  # the bias adder's setup
LEARNING_RATE = 1e-3
"""Not the bias adder's 0.02: with a D x D kernel per block, the loss's curvature grows with
the depth (every kernel moves `h_L` by about `h @ delta_W`), and at 0.02 sgd overflows within
10 steps at depth 64 and sgd with momentum 0.9 at depth 2 within 50 (B8xD4). At 1e-3 every
optimizer stays finite at every depth up to 64 (measured at B8xD4, the default fixed batch,
1000 steps: sgd, momentum, adam and adamw, depths 1, 4, 16, 32, 64)."""


def configure(settings: Settings) -> BiasStackConfig:
    """The config for a run (the config validates the options and names them)."""
    return BiasStackConfig(settings["depth"], settings["features"], settings["momentum"])


def default_data(config: BiasStackConfig, settings: Settings) -> np.ndarray:
    """The bias adder's loop: one fixed standard normal batch, reused at every step."""
    batch = BATCH if settings.batch is None else settings.batch
    steps = STEPS if settings.steps is None else settings.steps
    x = fixed_batch(batch, config.features, settings.seed)
    return as_batches("data", x, config.layer, steps)


def describe(config: BiasStackConfig, settings: Settings, batches: Any) -> dict[str, Any]:
    return {"depth": config.depth, "features": config.features}


def bench_depth(depth: int, quick: bool, rng: np.random.Generator) -> list[BenchShape]:
    """The stack at `depth` layers: a tiny, dispatch-bound shape and a large one."""
    sizes = [
        ("tiny", 8, 4, 10, 3) if quick else ("tiny", 8, 4, 30, 7),
        ("large", 128, 128, 1, 3) if quick else ("large", 128, 128, 2, 21),
    ]
    return gaussian_shapes(sizes, functools.partial(BiasStackConfig, depth), rng, f"L{depth} ")


SPEC = ModelSpec(
    name=MODEL,
    config_type=BiasStackConfig,
    configure=configure,
    data=default_data,
    loss=bias_stack_loss,
    reference="jax",
    oracle=bias_stack_oracle,
    tolerances=tolerances,
    params=canonical_params,
    state=canonical_state,
    options=(
        Option(
            "--depth",
            int,
            DEPTH,
            f"the number L of blocks, each a D x D Dense layer and a bias adder (default: {DEPTH})",
        ),
        Option("--features", int, FEATURES, f"feature size D (default: {FEATURES})"),
        Option("--momentum", float, 0.9, "every layer's EMA momentum (default: 0.9)"),
    ),
    steps=STEPS,
    batch=BATCH,
    learning_rate=LEARNING_RATE,
    describe=describe,
    bench=None,  # no standard shapes: `bench --depth` times it at the depths asked for
    bench_depth=bench_depth,
    loss_reduction="sum",  # sum((x - h_L)**2) over the batch: replicas' losses add up
    cross_device=lambda config, axis: replace(config, axis_name=axis),
)
"""L blocks in sequence, each a D x D Dense layer and a running-mean bias adder whose offset
it subtracts."""
