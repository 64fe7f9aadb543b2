"""A layer this project has never seen, as a model spec: scale-and-shift with a running variance.

    train:  v = mean(x**2, axis=0);  var <- m * var + (1 - m) * v
            y = x * rsqrt(v + eps) * scale + shift
    eval:   y = x * rsqrt(var + eps) * scale + shift

Params `scale`, `shift` (shape (D,)); state `var` (an EMA of the batch's second moment,
starting at 1). Trained to map x onto a fixed affine target of it with a mean squared error.
This file is all the harness needs to know; the layer itself is written twice, in Flax NNX
(`scale_var_nnx.py`) and in Equinox (`scale_var_equinox.py`), and cross-validated with

    state-rosetta compare --model examples/porting/scale_var.py:SPEC \\
        --impl examples/porting/scale_var_nnx.py:NNXScaleVar \\
        --impl examples/porting/scale_var_equinox.py:EquinoxScaleVar
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import shared


@dataclass(frozen=True)
class ScaleVarConfig:
    """The layer's hyperparameters: feature size, EMA momentum, epsilon."""

    features: int = 6
    momentum: float = 0.9
    eps: float = 1e-5


def configure(settings: shared.Settings) -> ScaleVarConfig:
    return ScaleVarConfig(settings["features"], settings["momentum"])


def data(config: ScaleVarConfig, settings: shared.Settings) -> dict[str, np.ndarray]:
    """Fresh inputs every step (mean 0.5, not 0), and their target: x * 2 - 0.5."""
    steps = settings.steps or 20
    batch = settings.batch or 16
    rng = np.random.default_rng(settings.seed)
    x = (rng.standard_normal((steps, batch, config.features)) + 0.5).astype(np.float32)
    return {"x": x, "y": (x * np.float32(2.0) - np.float32(0.5)).astype(np.float32)}


def loss(y: jax.Array, batch: dict[str, jax.Array]) -> jax.Array:
    return jnp.mean((y - batch["y"]) ** 2)


SPEC = shared.ModelSpec(
    name="scale-var",
    config_type=ScaleVarConfig,
    configure=configure,
    data=data,
    inputs=lambda batch: batch["x"],  # the model sees x; the loss also reads the target
    loss=loss,
    params=("scale", "shift"),
    state=("var",),
    options=(
        shared.Option("--features", int, 6, "feature size D (default: 6)"),
        shared.Option("--momentum", float, 0.9, "the running variance's momentum (default: 0.9)"),
    ),
    steps=20,
    learning_rate=0.05,
    # No `tolerances`: bitwise, the default. Two ports of this layer compile to the same
    # program under jit (both use lax.rsqrt and the same order of operations).
)
