"""(c): every trajectory is within the stated tolerance of the float64 oracle; and the oracle
itself against closed forms and optax.

The reference (pure JAX) is checked against the oracle in every loop; every other
implementation is bitwise equal to it loop for loop (test_equivalence.py), and so as close
to the oracle, but Keras's native loop, which is held to a bound of its own (Keras's
optimizer, its loss tracker): it is checked here too.
"""

from __future__ import annotations

import numpy as np
import optax
import pytest
from helpers import LOOPS_AND_MATRIX, MATRIX, OTHERS, REFERENCE, native_bound, oracle, trained

import shared
from shared.models.bias_adder import ORACLE, BiasAdderConfig, bias_adder_oracle, fixed_batch

# The reference in every loop of LOOPS_AND_MATRIX; each native loop that the spec does not
# hold to bitwise, on the matrix.
AGAINST_ORACLE = [
    pytest.param(REFERENCE, *p.values, id=f"{REFERENCE}-{p.id}") for p in LOOPS_AND_MATRIX
] + [
    pytest.param(impl, "native", True, *p.values, id=f"{impl}-native-True-{p.id}")
    for impl in OTHERS
    for p in MATRIX
    if native_bound(impl, p.values[0], p.values[3]) != (shared.BITWISE, None)
]


@pytest.mark.parametrize(
    ("impl", "loop", "jit", "optimizer", "momentum", "batch", "features"), AGAINST_ORACLE
)
def test_trajectory_within_tolerance_of_float64_oracle(
    impl, loop, jit, optimizer, momentum, batch, features
):
    result = shared.compare(
        trained(impl, loop, optimizer, momentum, batch, features, jit),
        oracle(optimizer, momentum, batch, features),
        ORACLE,
    )
    assert result.first_divergence is None, result


@pytest.mark.parametrize(("batch", "features", "momentum"), [(8, 4, 0.9), (5, 3, 0.5)])
def test_oracle_matches_closed_form_for_sgd_on_a_fixed_batch(batch, features, momentum):
    # With a fixed batch x, mean_t = xbar (1 - m^t), so xbar - mean_t = xbar m^t, and sgd gives
    # b_t = a b_{t-1} + c xbar m^t with a = 1 - 2 B lr, c = 2 B lr; hence
    # b_t = c xbar m (a^t - m^t) / (a - m), and loss_t = S + B |xbar m^t - b_{t-1}|^2.
    lr, steps = 0.02, 30
    x = fixed_batch(batch, features, 3).astype(np.float64)
    config = BiasAdderConfig(features, momentum)
    traj = shared.Trajectory.from_steps(
        bias_adder_oracle(
            np.broadcast_to(x, (steps, batch, features)),
            config,
            shared.OptimizerConfig("sgd", learning_rate=lr),
        )
    )
    xbar = x.mean(axis=0)
    spread = np.sum((x - xbar) ** 2)
    a, c, m = 1 - 2 * batch * lr, 2 * batch * lr, momentum
    for t in range(1, steps + 1):
        bias_prev = c * xbar * m * (a ** (t - 1) - m ** (t - 1)) / (a - m)
        np.testing.assert_allclose(traj.state["mean"][t], xbar * (1 - m**t), rtol=1e-12)
        np.testing.assert_allclose(
            traj.params["bias"][t], c * xbar * m * (a**t - m**t) / (a - m), rtol=1e-10, atol=1e-14
        )
        expected_loss = spread + batch * np.sum((xbar * m**t - bias_prev) ** 2)
        np.testing.assert_allclose(traj.loss[t - 1], expected_loss, rtol=1e-12)


@pytest.mark.parametrize("name", shared.OPTIMIZERS)
def test_numpy_optimizers_follow_optax(name):
    # float64 formulas against optax in float32 on the same gradient sequence: agreement to
    # float32 rounding (1e-5 relative over 20 steps) shows that the formulas are optax's.
    config = shared.OptimizerConfig(name, learning_rate=0.05)
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((20, 6))
    p64 = {"w": rng.standard_normal(6)}
    ours = shared.NumpyOptimizer(config, p64)
    tx = config.make()
    p32 = {"w": p64["w"].astype(np.float32)}
    opt_state = tx.init(p32)
    for g in grads:
        p64 = ours.step(p64, {"w": g})
        updates, opt_state = tx.update({"w": g.astype(np.float32)}, opt_state, p32)
        p32 = optax.apply_updates(p32, updates)
        np.testing.assert_allclose(np.asarray(p32["w"]), p64["w"], rtol=1e-5, atol=1e-6)


def test_adam_first_step_is_a_signed_learning_rate():
    # Closed form: after one step, m_hat = g and v_hat = g^2, so the update is -lr g/(|g|+eps).
    config = shared.OptimizerConfig("adam", learning_rate=0.1)
    g = np.array([3.0, -0.5, 1e-3])
    new = shared.NumpyOptimizer(config, {"w": np.zeros(3)}).step({"w": np.zeros(3)}, {"w": g})
    np.testing.assert_allclose(new["w"], -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-15)
