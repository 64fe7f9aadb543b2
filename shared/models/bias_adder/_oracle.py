"""A float64 NumPy oracle: the bias adder's recurrence, with optax's formulas by hand.

Nothing here calls JAX or optax, so that it is an independent check of both.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from shared.core import NumpyOptimizer, OptimizerConfig

from ._config import BiasAdderConfig


def bias_adder_oracle(
    batches: npt.ArrayLike, config: BiasAdderConfig, optimizer: OptimizerConfig
) -> Iterator[dict[str, np.ndarray]]:
    """Train the bias adder in float64 from zero bias and zero mean, one step at a time.

    **Arguments:**

    - `batches`: (steps, batch, features), one batch per step.
    - `config`: the model's hyperparameters (`keepdims` reproduces the (1, D) state).
    - `optimizer`: which optax formula to follow.

    **Yields:** the values of every step, from the initial ones (step 0): `"params.bias"`,
    `"state.mean"` and, from step 1, `"loss"`; each batch is converted to float64 as its step
    comes, so a large run never holds more than one. `Trajectory.from_steps` records them.

    The gradient is the closed form: with `y = mean + bias` broadcast over the batch,
    `d/dbias sum((x - y)^2) = -2 * sum_b (x_b - y)`.
    """
    xs = np.asarray(batches)
    features = xs.shape[-1]
    params = {"bias": np.zeros(features)}
    state = {"mean": np.zeros(features)}
    opt = NumpyOptimizer(optimizer, params)
    yield {"params.bias": params["bias"], "state.mean": state["mean"]}
    m = config.momentum
    for step in range(xs.shape[0]):
        x = np.asarray(xs[step], np.float64)
        batch_mean = x.mean(axis=0, keepdims=config.keepdims)
        state = {"mean": m * state["mean"] + (1 - m) * batch_mean}
        y = state["mean"] + params["bias"]
        loss = np.sum((x - y) ** 2)
        grad = -2 * np.sum(x - y, axis=0)
        params = opt.step(params, {"bias": grad.reshape(params["bias"].shape)})
        yield {"loss": np.asarray(loss), "params.bias": params["bias"], "state.mean": state["mean"]}
