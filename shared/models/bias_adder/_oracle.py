"""A float64 NumPy oracle: the bias adder's recurrence, with optax's formulas by hand.

Nothing here calls JAX or optax, so that it is an independent check of both.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.core import NumpyOptimizer, OptimizerConfig, Trajectory

from ._config import BiasAdderConfig


def bias_adder_oracle(
    batches: npt.ArrayLike, config: BiasAdderConfig, optimizer: OptimizerConfig
) -> Trajectory:
    """Train the bias adder in float64 from zero bias and zero mean.

    **Arguments:**

    - `batches`: (steps, batch, features), one batch per step.
    - `config`: the model's hyperparameters (`keepdims` reproduces the (1, D) state).
    - `optimizer`: which optax formula to follow.

    The gradient is the closed form: with `y = mean + bias` broadcast over the batch,
    `d/dbias sum((x - y)^2) = -2 * sum_b (x_b - y)`.
    """
    xs = np.asarray(batches, np.float64)
    features = xs.shape[-1]
    params = {"bias": np.zeros(features)}
    state = {"mean": np.zeros(features)}
    opt = NumpyOptimizer(optimizer, params)
    trajectory = Trajectory()
    trajectory.record_initial(params, state)  # type: ignore[arg-type]
    m = config.momentum
    for x in xs:
        batch_mean = x.mean(axis=0, keepdims=config.keepdims)
        state = {"mean": m * state["mean"] + (1 - m) * batch_mean}
        y = state["mean"] + params["bias"]
        loss = np.sum((x - y) ** 2)
        grad = -2 * np.sum(x - y, axis=0)
        params = opt.step(params, {"bias": grad.reshape(params["bias"].shape)})
        trajectory.record_step(loss, params, state)  # type: ignore[arg-type]
    return trajectory
