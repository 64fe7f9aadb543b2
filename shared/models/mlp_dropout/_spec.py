"""The MLP with dropout as a model spec: digits, cross-entropy, aligned or native keys."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import jax.numpy as jnp

from shared.core import Evaluation, Implementation, ModelSpec, Option, Settings
from shared.models.mlp_bn import (
    Labelled,
    digits,
    metrics,
    mlp_bn_inputs,
    mlp_bn_loss,
    test_data,
    train_data,
)

from ._config import CANONICAL_PARAMS, MODEL, MlpDropoutConfig, canonical_init
from ._docs import DOCS
from ._provenance import key_provenance
from ._seeds import seed_distributions
from ._tolerances import EVAL, tolerances

STEPS, BATCH = 200, 64  # mlp-bn's data: its train_data and test_data
LEARNING_RATE = 0.3  # sgd at 0.1 reaches only 0.92 in 200 steps without BatchNorm


def configure(settings: Settings) -> MlpDropoutConfig:
    """Aligned keys, or (`--native`) each framework's own plumbing from the run's seed."""
    return MlpDropoutConfig(
        hidden=settings["hidden"],
        rate=settings["rate"],
        keys=settings.mode,
        seed=settings.seed,
    )


def initial(
    impl: Implementation, config: MlpDropoutConfig, batches: Labelled, seed: int
) -> tuple[Any, Any]:
    """One canonical init for the params, loaded into every framework, with the framework's
    own initial random state (`from_canonical` with no canonical state gives a fresh one: an
    `nnx.Rngs` stream seeded with the run's seed in native mode, nothing elsewhere)."""
    params = {k: jnp.asarray(v) for k, v in canonical_init(config, seed).items()}
    return impl.from_canonical(params, {})


def describe(config: MlpDropoutConfig, settings: Settings, batches: Labelled) -> dict[str, Any]:
    d = digits()
    return {
        "features": config.features,
        "data": "sklearn.datasets.load_digits (stratified 75/25 split, seed 0)",
        "data_dtype": "float32",
        "train_examples": len(d.y_train),
        "test_examples": len(d.y_test),
        "mlp": asdict(config),
    }


SPEC = ModelSpec(
    name=MODEL,
    config_type=MlpDropoutConfig,
    configure=configure,
    data=train_data,
    loss=mlp_bn_loss,
    inputs=mlp_bn_inputs,
    reference="flax_linen",
    tolerances=tolerances,
    params=CANONICAL_PARAMS,
    init=initial,
    evaluation=Evaluation(test_data, metrics, EVAL),
    analyses=(key_provenance, seed_distributions),
    options=(
        Option("--hidden", int, 32, "hidden width H (default: 32)"),
        Option("--rate", float, 0.1, "dropout rate, in [0, 1) (default: 0.1)"),
        Option("--seeds", int, 20, "native: seeds per framework for the statistical check"),
    ),
    modes=("aligned", "native"),
    mode_help={
        "aligned": "one key per step and dropout layer, the same for every framework: all "
        "must agree (the default)",
        "native": "each framework's own key plumbing from --seed: each must equal itself "
        "across loops; across frameworks they differ, as expected",
    },
    steps=STEPS,
    batch=BATCH,
    learning_rate=LEARNING_RATE,
    random=True,
    describe=describe,
    docs=DOCS,
)
"""Dense(64 -> H), relu, Dropout(rate), Dense(H -> 10), on scikit-learn's digits."""
