"""A float64 NumPy oracle: the bias stack's recurrence, its gradient by hand, optax's formulas
by hand (`shared.core.NumpyOptimizer`, as for the bias adder).

Nothing here calls JAX or optax, so that it is an independent check of both.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.core import NumpyOptimizer, OptimizerConfig, Trajectory

from ._config import BiasStackConfig, canonical_params, canonical_state


def bias_stack_oracle(
    batches: npt.ArrayLike, config: BiasStackConfig, optimizer: OptimizerConfig
) -> Trajectory:
    """Train the bias stack in float64 from identity kernels, zero biases and zero means.

    **Arguments:**

    - `batches`: (steps, batch, features), one batch per step.
    - `config`: the model's hyperparameters (`depth`, `momentum`).
    - `optimizer`: which optax formula to follow.

    The gradient is backpropagated through the blocks by hand. With `z_l = h_l @ W_l`,
    `mean'_l = m * mean_l + (1 - m) * batch_mean(z_l)`, `a_l = mean'_l + bias_l`,
    `h_{l+1} = z_l - a_l` and `g_l = dloss/dh_l` (`g_L = -2 (x - h_L)`):
    `dloss/da_l = -sum_b g_{l+1}`, which is also `dloss/dbias_l`;
    `dloss/dz_l = g_{l+1} + (1 - m) / B * dloss/da_l` (each row of `z_l` also moves the
    batch mean that `a_l` is made of: the frameworks differentiate through the state
    update); `dloss/dW_l = h_l^T @ dloss/dz_l` and `g_l = dloss/dz_l @ W_l^T`.
    """
    xs = np.asarray(batches, np.float64)
    batch, features = xs.shape[1], xs.shape[2]
    layers = range(config.depth)
    kernels = [f"layers.{layer}.kernel" for layer in layers]
    biases = [f"layers.{layer}.bias" for layer in layers]
    means = [f"layers.{layer}.mean" for layer in layers]
    assert sorted(kernels + biases) == sorted(canonical_params(config))
    assert means == list(canonical_state(config))
    params: dict[str, npt.NDArray[np.float64]] = {name: np.eye(features) for name in kernels}
    params.update({name: np.zeros(features) for name in biases})
    state = {name: np.zeros(features) for name in means}
    opt = NumpyOptimizer(optimizer, params)
    trajectory = Trajectory()
    trajectory.record_initial(params, state)  # type: ignore[arg-type]
    m = config.momentum
    for x in xs:
        h, new_state, inputs = x, {}, []
        for kernel, bias, mean in zip(kernels, biases, means, strict=True):
            inputs.append(h)
            z = h @ params[kernel]
            new_state[mean] = m * state[mean] + (1 - m) * z.mean(axis=0)
            h = z - (new_state[mean] + params[bias])
        state = new_state
        loss = np.sum((x - h) ** 2)
        g = -2 * (x - h)  # dloss/dh_L
        grads = {}
        for layer in reversed(layers):
            grads[biases[layer]] = -g.sum(axis=0)  # dloss/da_l
            dz = g + (1 - m) / batch * grads[biases[layer]]
            grads[kernels[layer]] = inputs[layer].T @ dz
            g = dz @ params[kernels[layer]].T
        params = opt.step(params, grads)
        trajectory.record_step(loss, params, state)  # type: ignore[arg-type]
    return trajectory
