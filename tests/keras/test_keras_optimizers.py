"""Keras's own optimizers, configured from the harness's optax settings, against optax.

SGD is optax's to the bit. Momentum and Adam are the same methods in other formulas: bounded.
Keras's Adam puts epsilon elsewhere; with epsilon 0 on both sides, only rounding is left.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import impl_keras
import shared
from shared.models import bias_adder, mlp_bn, mlp_dropout

STEPS = 50


def _bias_adder_runs(optimizer: shared.OptimizerConfig, xs: np.ndarray):
    impl = shared.make("keras", bias_adder.BiasAdderConfig(xs.shape[-1]))
    params, state = impl.init(jax.random.key(0), xs[0])
    tx = optimizer.make()
    harness = shared.run_harness(impl, params, state, tx, xs, bias_adder.bias_adder_loss)[0]
    return harness, shared.run_native(impl, params, state, tx, xs)


def _xs(scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((STEPS, 8, 4)) * scale + 0.5 * scale).astype(np.float32)


def test_keras_optimizers_take_the_harness_hyperparameters():
    adamw = shared.OptimizerConfig("adamw", 0.003, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1)
    keras_adamw = impl_keras.keras_optimizer(adamw)
    assert float(keras_adamw.learning_rate) == pytest.approx(0.003)
    assert (keras_adamw.beta_1, keras_adamw.beta_2) == (0.8, 0.99)
    assert (keras_adamw.epsilon, keras_adamw.weight_decay) == (1e-6, 0.1)
    kept = impl_keras.keras_optimizer(adamw, keep_defaults=True)  # Keras's own defaults
    assert (kept.epsilon, kept.weight_decay) == (1e-7, 0.004)
    momentum = impl_keras.keras_optimizer(shared.OptimizerConfig("momentum", momentum=0.5))
    assert momentum.momentum == 0.5 and momentum.nesterov is False


def test_a_transformation_not_made_by_optimizer_config_is_refused():
    impl = shared.make("keras", bias_adder.BiasAdderConfig(4))
    params, state = impl.init(jax.random.key(0), _xs()[0])
    with pytest.raises(TypeError, match="keras: the native loop trains with Keras's own"):
        impl.native_loop(params, state, optax.sgd(0.02))


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw"])
def test_bias_adder_native_against_harness(name):
    harness, native = _bias_adder_runs(shared.OptimizerConfig(name), _xs())
    tolerance, loss = bias_adder.tolerances(
        bias_adder.BiasAdderConfig(4), shared.OptimizerConfig(name)
    ).for_pair("keras/native", "keras/harness")
    result = shared.compare(native, harness, tolerance, loss_tolerance=loss)
    assert result.first_divergence is None, result
    if name == "sgd":  # params and state bitwise; B = 8, so the tracked loss is exact too
        assert result.bitwise


def test_kerass_adam_puts_epsilon_before_the_bias_correction():
    """Step 1 from bias 0 with tiny gradients, in float64 closed form: Keras's Adam takes
    lr * sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps); optax lr * m_hat / (sqrt(v_hat) + eps)."""
    config = shared.OptimizerConfig("adam", 0.02)
    xs = _xs(scale=1e-8)  # gradients near 1e-7: epsilon matters
    harness, native = _bias_adder_runs(config, xs)
    mean = 0.1 * xs[0].astype(np.float64).mean(0)  # the EMA's first update
    g = -2 * (xs[0].astype(np.float64) - mean).sum(0)  # d/d bias of sum((x - mean - bias)^2)
    m, v = (1 - config.b1) * g, (1 - config.b2) * g**2
    lr, eps = config.learning_rate, config.eps
    keras_step = -lr * np.sqrt(1 - config.b2) / (1 - config.b1) * m / (np.sqrt(v) + eps)
    optax_step = -lr * (m / (1 - config.b1)) / (np.sqrt(v / (1 - config.b2)) + eps)
    assert np.min(np.abs(keras_step - optax_step) / np.abs(optax_step)) > 0.1  # far apart
    np.testing.assert_allclose(native.params["bias"][1], keras_step, rtol=1e-5)
    np.testing.assert_allclose(harness.params["bias"][1], optax_step, rtol=1e-5)


def test_with_epsilon_zero_kerass_adam_is_optaxs_up_to_rounding():
    for scale in (1.0, 1e-8):
        config = shared.OptimizerConfig("adam", 0.02, eps=0.0)
        harness, native = _bias_adder_runs(config, _xs(scale))
        # The same formula, rounded differently: within 4e-6 relative over 50 steps, or 1e-6
        # of a step (lr) where the bias crosses 0 (measured: 4.3e-9 at scale 1e-8).
        bound = shared.Tolerance(atol=2e-8, rtol=4e-6, reason="Adam without epsilon")
        result = shared.compare(native, harness, bound)
        assert result.first_divergence is None, (scale, result)


@pytest.mark.slow  # two MLPs' native runs; the fast tier's Keras optimizer tests are above
@pytest.mark.parametrize(("model", "module"), [("mlp-bn", mlp_bn), ("mlp-dropout", mlp_dropout)])
def test_mlp_native_with_momentum_within_the_stated_bound(cli_run, model, module):
    run = cli_run(
        "compare",
        "--model",
        model,
        "--optimizer",
        "momentum",
        "--impls",
        "keras",
        "--loop",
        "harness,native",
        "--reference",
        "keras/harness",
    )
    assert run.code == 0, run.output[-3000:]
    (pair,) = run.json["comparison"]["pairs"]
    assert pair["a"] == "keras/native" and not pair["bitwise"]
    assert pair["tolerance"]["atol"] == module.KERAS_MOMENTUM.atol
