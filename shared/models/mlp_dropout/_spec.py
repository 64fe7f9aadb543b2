"""The MLP with dropout as a model spec: digits, cross-entropy, aligned or native keys."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import jax.numpy as jnp

from shared.core import Evaluation, Implementation, ModelSpec, Option, Settings
from shared.models.mlp_bn import Labelled, digits, minibatches, mlp_bn_inputs, mlp_bn_loss

from ._config import CANONICAL_PARAMS, MODEL, MlpDropoutConfig, canonical_init
from ._docs import DOCS
from ._provenance import key_provenance
from ._seeds import seed_distributions
from ._tolerances import EVAL, tolerances

STEPS, BATCH, LEARNING_RATE = 200, 64, 0.3  # sgd at 0.1 reaches only 0.92 without BatchNorm


def configure(settings: Settings) -> MlpDropoutConfig:
    """Aligned keys, or (`--native`) each framework's own plumbing from the run's seed."""
    return MlpDropoutConfig(
        hidden=settings["hidden"],
        rate=settings["rate"],
        keys=settings.mode,
        seed=settings.seed,
    )


def train_data(config: MlpDropoutConfig, settings: Settings) -> Labelled:
    """Shuffled mini-batches of the digits' training split, one per step (mlp-bn's)."""
    d = digits()
    batch = BATCH if settings.batch is None else settings.batch
    steps = STEPS if settings.steps is None else settings.steps
    return minibatches(d.x_train, d.y_train, batch, steps, settings.seed, config.classes)


def test_data(config: MlpDropoutConfig, settings: Settings) -> Labelled:
    d = digits()
    return Labelled(jnp.asarray(d.x_test), jnp.asarray(d.y_test))


def metrics(logits: Any, batch: Labelled) -> dict[str, float]:
    import numpy as np

    loss = float(mlp_bn_loss(jnp.asarray(logits), batch))
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == np.asarray(batch.labels)))
    return {"loss": loss, "accuracy": accuracy}


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
