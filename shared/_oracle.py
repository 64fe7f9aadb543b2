"""A float64 NumPy oracle: the bias adder's recurrence and optax's update formulas, by hand.

Nothing here calls JAX or optax, so that it is an independent check of both.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._optim import OptimizerConfig
from ._protocol import BiasAdderConfig
from ._trajectory import Trajectory

F64 = npt.NDArray[np.float64]


class NumpyOptimizer:
    """optax's sgd, sgd with momentum, adam and adamw, written out in float64.

    Formulas (t counts updates from 1, g is the gradient, p the parameter):

    - sgd: `p -= lr * g`
    - momentum (optax.trace, not Nesterov): `v = mu * v + g`; `p -= lr * v`
    - adam: `m = b1 m + (1-b1) g`; `v = b2 v + (1-b2) g^2`;
      `p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`
    - adamw: adam's direction plus `weight_decay * p`, both scaled by lr.
    """

    def __init__(self, config: OptimizerConfig, params: dict[str, F64]):
        self.config = config
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, F64], grads: dict[str, F64]) -> dict[str, F64]:
        c = self.config
        self.t += 1
        new = {}
        for k, p in params.items():
            g = grads[k]
            if c.name == "sgd":
                direction = g
            elif c.name == "momentum":
                self.m[k] = c.momentum * self.m[k] + g
                direction = self.m[k]
            else:
                self.m[k] = c.b1 * self.m[k] + (1 - c.b1) * g
                self.v[k] = c.b2 * self.v[k] + (1 - c.b2) * g**2
                m_hat = self.m[k] / (1 - c.b1**self.t)
                v_hat = self.v[k] / (1 - c.b2**self.t)
                direction = m_hat / (np.sqrt(v_hat) + c.eps)
                if c.name == "adamw":
                    direction = direction + c.weight_decay * p
            new[k] = p - c.learning_rate * direction
        return new


def bias_adder_oracle(
    batches: npt.ArrayLike, config: BiasAdderConfig, optimizer: OptimizerConfig
) -> Trajectory:
    """Train the bias adder in float64 from zero bias and zero mean.

    **Arguments:**

    - `batches`: (steps, batch, features), one batch per step.
    - `config`: the model's hyperparameters (`seed_faithful` reproduces the (1, D) state).
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
        batch_mean = x.mean(axis=0, keepdims=config.seed_faithful)
        state = {"mean": m * state["mean"] + (1 - m) * batch_mean}
        y = state["mean"] + params["bias"]
        loss = np.sum((x - y) ** 2)
        grad = -2 * np.sum(x - y, axis=0)
        params = opt.step(params, {"bias": grad.reshape(params["bias"].shape)})
        trajectory.record_step(loss, params, state)  # type: ignore[arg-type]
    return trajectory
