"""The harness's optimizer as a Keras optimizer, for Keras's own training loop."""

from __future__ import annotations

import keras
import optax

from shared import OptimizerConfig, optimizer_config_of

KERAS_DEFAULTS: dict[str, str] = {
    "adam": "Adam(epsilon=1e-7)",
    "adamw": "AdamW(epsilon=1e-7, weight_decay=0.004)",
}
"""Where Keras's own optimizer defaults differ from optax's, by optimizer (sgd and momentum
take only the learning rate and the momentum, which the harness gives)."""


def keras_optimizer(config: OptimizerConfig, *, keep_defaults: bool = False) -> keras.Optimizer:
    """Keras's optimizer with the harness's hyperparameters (optax's defaults), or with
    Keras's own defaults for everything but the learning rate and the momentum.

    Keras's Adam adds epsilon to `sqrt(v)` and folds both bias corrections into the step
    size, `lr * sqrt(1 - b2^t) / (1 - b1^t)`; optax adds it to `sqrt(v_hat)`. With the same
    epsilon the two differ by a factor `sqrt(1 - b2^t)` on epsilon's weight: a bounded
    difference, not a bitwise one (see the models' tolerances).
    """
    lr = config.learning_rate
    if config.name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr)
    if config.name == "momentum":
        return keras.optimizers.SGD(learning_rate=lr, momentum=config.momentum)
    aligned = {} if keep_defaults else {"epsilon": config.eps}
    betas = {"beta_1": config.b1, "beta_2": config.b2}
    if config.name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, **betas, **aligned)
    if not keep_defaults:
        aligned["weight_decay"] = config.weight_decay
    return keras.optimizers.AdamW(learning_rate=lr, **betas, **aligned)


def harness_optimizer(where: str, tx: optax.GradientTransformation) -> OptimizerConfig:
    """The `OptimizerConfig` behind the harness's `tx`, or a `TypeError` naming `where`."""
    config = optimizer_config_of(tx)
    if config is None:
        raise TypeError(
            f"{where}: the native loop trains with Keras's own optimizer, built from the "
            "harness's shared.OptimizerConfig; expected a transformation made by "
            "OptimizerConfig.make(), got another optax transformation"
        )
    return config
