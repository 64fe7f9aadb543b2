"""Every row of the BatchNorm defaults table (docs/batchnorm.md), measured on the frameworks'
own layers.

Each test fails if the framework changes that default. Values are derived from the layers'
behaviour (closed forms in float64), not copied from their source.
"""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import equinox as eqx
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import MLP_BN_IMPLS

import impl_keras  # noqa: F401  (Keras on the JAX backend)
import shared
from shared.models import mlp_bn

import keras  # isort: skip

ROOT = Path(__file__).resolve().parents[2]

C = 3
X = np.asarray([[0.5, -1.0, 2.0], [1.5, 0.0, -2.0], [-0.5, 3.0, 1.0], [2.5, 1.0, 0.0]], np.float32)
MEAN = X.astype(np.float64).mean(0)
VAR = X.astype(np.float64).var(0)  # biased: every framework divides by the batch size


def linen_step(x, **kwargs):
    bn = nn.BatchNorm(**kwargs)
    variables = bn.init(jax.random.key(0), x, use_running_average=False)
    y, updates = bn.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
    return variables, y, updates["batch_stats"]


def nnx_layer(**kwargs):
    return nnx.BatchNorm(C, rngs=nnx.Rngs(0), **kwargs)


def haiku_fn(**kwargs):
    kwargs = {"create_scale": True, "create_offset": True, "decay_rate": 0.9, **kwargs}
    return hk.without_apply_rng(
        hk.transform_with_state(lambda x, t: hk.BatchNorm(name="bn", **kwargs)(x, t))
    )


def eqx_call(bn, state, x, inference=False):
    model = eqx.nn.inference_mode(bn, value=inference)
    return jax.vmap(model, axis_name="b", in_axes=(0, None), out_axes=(0, None))(x, state)


def eqx_layer(**kwargs):
    return eqx.nn.make_with_state(eqx.nn.BatchNorm)(C, "b", **kwargs)


def keras_layer(**kwargs):
    bn = keras.layers.BatchNormalization(**kwargs)
    bn.build((None, C))
    return bn


def keras_call(bn, x, **training):
    """One `stateless_call`: outputs and the new non-trainable values by variable name."""
    params = [v.value for v in bn.trainable_variables]
    state = [v.value for v in bn.non_trainable_variables]
    y, new = bn.stateless_call(params, state, jnp.asarray(x), **training)
    return y, {v.name: value for v, value in zip(bn.non_trainable_variables, new, strict=True)}


# --- momentum / decay ---------------------------------------------------------------------


def test_momentum_defaults():
    # Linen and NNX: 0.99, read off one update from mean 0: mean_1 = (1 - m) * batch mean.
    _, _, stats = linen_step(X)
    np.testing.assert_allclose(stats["mean"], 0.01 * MEAN, rtol=1e-5)
    layer = nnx_layer()
    layer(jnp.asarray(X))
    np.testing.assert_allclose(layer.mean[...], 0.01 * MEAN, rtol=1e-5)
    # Equinox: 0.99, with the same update in mode="batch" (its hidden EMA).
    bn, state = eqx_layer(mode="batch")
    _, state = eqx_call(bn, state, X)
    np.testing.assert_allclose(state.get(bn.batch_state_index)[0], 0.01 * MEAN, rtol=1e-5)
    # Keras: 0.99, the same update.
    _, stats = keras_call(keras_layer(), X, training=True)
    np.testing.assert_allclose(stats["moving_mean"], 0.01 * MEAN, rtol=1e-5)
    # Haiku: no default at all; hk.nets.ResNet's bn_config supplies 0.999.
    with pytest.raises(TypeError, match="decay_rate"):
        hk.transform_with_state(lambda x: hk.BatchNorm(True, True)(x, True)).init(None, X)
    assert _resnet_decay() == pytest.approx(0.999, abs=1e-6)


def _resnet_decay() -> float:
    """hk.nets.ResNet's BatchNorm decay, read off one training step of one of its blocks."""

    def block(x):
        return hk.nets.ResNet.BlockV1(4, 1, False, {}, False, name="block")(x, True, False)

    f = hk.without_apply_rng(hk.transform_with_state(block))
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 4)).astype(np.float32)
    params, state = f.init(jax.random.key(0), x)
    _, state = f.apply(params, state, x)
    ema = next(v for k, v in state.items() if k.endswith("mean_ema"))
    # One step from hidden 0, counter 0: average = hidden / (1 - d), so d = 1 - hidden/average.
    ratio = np.asarray(ema["hidden"], np.float64) / np.asarray(ema["average"], np.float64)
    return float(1 - np.median(ratio))


def test_haiku_resnet_bn_config_decay_is_what_defaults_mode_uses():
    assert _defaults_mode_decay() == pytest.approx(_resnet_decay(), abs=1e-6)


def _defaults_mode_decay() -> float:
    """The decay of Haiku's adapter in `--defaults` mode, read off one training step from its
    own initial state (hidden 0, counter 0), as `_resnet_decay` reads ResNet's."""
    impl = shared.make("haiku", mlp_bn.MlpBnConfig(native_defaults=mlp_bn.KNOBS), "mlp-bn")
    x = jnp.asarray(mlp_bn.load_digits_split().x_train[:64])
    params, state = impl.init(jax.random.key(0), x)
    _, state = impl.apply(params, state, x, train=True)
    ema = next(v for k, v in state.items() if k.endswith("mean_ema"))
    assert int(ema["counter"]) == 1
    ratio = np.asarray(ema["hidden"], np.float64) / np.asarray(ema["average"], np.float64)
    return float(1 - np.median(ratio))


def test_haiku_computes_one_minus_decay_in_float32():
    f = haiku_fn(decay_rate=0.9)
    params, state = f.init(None, X, True)
    state = {k: {**v, "hidden": v["hidden"] * 0} for k, v in state.items()}
    _, new = f.apply(params, state, X, True)
    hidden = np.asarray(new["bn/~/mean_ema"]["hidden"]).ravel()
    batch_mean = jnp.mean(jnp.asarray(X), 0)
    float32_weight = np.asarray(batch_mean * (jnp.float32(1) - jnp.float32(0.9)))
    python_weight = np.asarray(batch_mean * jnp.float32(1 - 0.9))
    np.testing.assert_array_equal(hidden, float32_weight)
    assert not np.array_equal(float32_weight, python_weight)  # 0.100000024 vs 0.1


# --- epsilon ------------------------------------------------------------------------------


def test_epsilon_defaults():
    # Eval with running mean 0 and var 0: y = x / sqrt(eps), so eps = (x / y)^2.
    x = np.ones((2, C), np.float32)
    variables = {
        "params": {"scale": jnp.ones(C), "bias": jnp.zeros(C)},
        "batch_stats": {"mean": jnp.zeros(C), "var": jnp.zeros(C)},
    }
    eps = {"linen": nn.BatchNorm(use_running_average=True).apply(variables, x)}
    layer = nnx_layer()
    layer.var[...] = jnp.zeros(C)
    layer.eval()
    eps["nnx"] = layer(jnp.asarray(x))
    f = haiku_fn()
    params, state = f.init(None, x, True)
    state = {k: {**v, "average": v["average"] * 0} for k, v in state.items()}
    eps["haiku"] = f.apply(params, state, x, False)[0]
    bn, st = eqx_layer(mode="ema")
    st = st.set(bn.ema_state_index, (jnp.zeros(C), jnp.zeros(C)))
    eps["equinox"] = eqx_call(bn, st, x, inference=True)[0]
    for name, y in eps.items():
        np.testing.assert_allclose(
            (1 / np.asarray(y, np.float64)) ** 2, 1e-5, rtol=1e-5, err_msg=name
        )
    # Keras: 1e-3, read off the same eval call with a moving variance of 0.
    layer = keras_layer()
    layer.moving_variance.assign(np.zeros(C, np.float32))
    y, _ = keras_call(layer, x, training=False)
    np.testing.assert_allclose((1 / np.asarray(y, np.float64)) ** 2, 1e-3, rtol=1e-5)


# --- variance formula ---------------------------------------------------------------------

CONSTANT = np.full((8, C), 1000.1, np.float32)  # true variance 0; E[x^2] - E[x]^2 = -0.125


def test_variance_formulas_on_a_constant_column():
    fast = jnp.mean(CONSTANT**2, axis=0) - jnp.mean(CONSTANT, axis=0) ** 2
    assert (fast < 0).all()  # the float32 hazard
    # Flax: E[x^2] - E[x]^2 clamped at 0 (use_fast_variance=True by default).
    assert nn.BatchNorm.use_fast_variance is True
    _, y, stats = linen_step(CONSTANT, momentum=0.0)
    np.testing.assert_array_equal(stats["var"], np.zeros(C))
    assert np.isfinite(y).all()
    # NNX: the same default.
    assert nnx_layer().use_fast_variance is True
    # Haiku: E[x^2] - E[x]^2 without the clamp: a negative variance, and NaN outputs.
    f = haiku_fn()
    params, state = f.init(None, CONSTANT, True)
    y, new = f.apply(params, state, CONSTANT, True)
    assert (np.asarray(new["bn/~/var_ema"]["average"]) < 0).all()
    assert np.isnan(y).all()
    # Equinox: two-pass E[(x - E[x])^2]: exactly 0.
    bn, st = eqx_layer(mode="batch", momentum=0.5)
    y, st = eqx_call(bn, st, CONSTANT)
    np.testing.assert_array_equal(st.get(bn.batch_state_index)[1], np.full(C, 0.5))  # 0.5*1 + 0.5*0
    assert np.isfinite(y).all()
    # Keras: two-pass (jnp.var) as well: exactly 0.
    y, stats = keras_call(keras_layer(momentum=0.5), CONSTANT, training=True)
    np.testing.assert_array_equal(stats["moving_variance"], np.full(C, 0.5))
    assert np.isfinite(y).all()


# --- initial running statistics, debiasing ------------------------------------------------


def test_initial_running_statistics():
    variables, _, _ = linen_step(X)  # Linen's init does not update the statistics
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], np.zeros(C))
    np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(C))
    layer = nnx_layer()
    np.testing.assert_array_equal(layer.mean[...], np.zeros(C))
    np.testing.assert_array_equal(layer.var[...], np.ones(C))
    # Haiku: hidden 0 and counter 0, but init(is_training=True) fills `average` with the
    # init batch's statistics; init(is_training=False) cannot run at all.
    f = haiku_fn()
    _, state = f.init(None, X, True)
    for ema, expected in (("mean_ema", MEAN), ("var_ema", VAR)):
        s = state[f"bn/~/{ema}"]
        assert int(s["counter"]) == 0
        np.testing.assert_array_equal(s["hidden"], np.zeros((1, C)))
        np.testing.assert_allclose(np.ravel(s["average"]), expected, rtol=1e-5)
    with pytest.raises(Exception, match="average"):
        f.init(None, X, False)
    # Equinox mode="batch": hidden (0, 1), counter 0; mode="ema": a first-call flag.
    bn, st = eqx_layer(mode="batch")
    assert int(st.get(bn.batch_counter)) == 0
    np.testing.assert_array_equal(st.get(bn.batch_state_index)[1], np.ones(C))
    bn, st = eqx_layer(mode="ema")
    assert bool(st.get(bn.ema_first_time_index))
    # Keras: moving mean 0 and moving variance 1, created by build() without a call.
    layer = keras_layer()
    np.testing.assert_array_equal(layer.moving_mean.value, np.zeros(C))
    np.testing.assert_array_equal(layer.moving_variance.value, np.ones(C))


def test_debiasing():
    # Flax: none. After one step from (0, 1) with momentum m: (1-m) mean and m + (1-m) var.
    _, _, stats = linen_step(X, momentum=0.9)
    np.testing.assert_allclose(stats["mean"], 0.1 * MEAN, rtol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * VAR, rtol=1e-5)
    # Keras: none either, the same formulas.
    _, stats = keras_call(keras_layer(momentum=0.9), X, training=True)
    np.testing.assert_allclose(stats["moving_mean"], 0.1 * MEAN, rtol=1e-5)
    np.testing.assert_allclose(stats["moving_variance"], 0.9 + 0.1 * VAR, rtol=1e-5)
    # Haiku: zero debiasing; after one step the eval statistics are the batch's own.
    f = haiku_fn(decay_rate=0.9)
    params, state = f.init(None, X, True)
    _, state = f.apply(params, state, X, True)
    np.testing.assert_allclose(np.ravel(state["bn/~/mean_ema"]["average"]), MEAN, rtol=1e-5)
    np.testing.assert_allclose(np.ravel(state["bn/~/var_ema"]["average"]), VAR, rtol=1e-5)
    # Equinox mode="batch": divides by 1 - m**counter at eval, but its var EMA starts at 1,
    # not 0: after one step the eval variance is (m + (1-m) var) / (1-m) = 9 + var for m=0.9.
    bn, st = eqx_layer(mode="batch", momentum=0.9)
    _, st = eqx_call(bn, st, X)
    y, _ = eqx_call(bn, st, X, inference=True)
    eval_var = 9.0 + VAR
    expected = (X - MEAN) / np.sqrt(eval_var + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-6)


# --- scale and offset shapes --------------------------------------------------------------


def test_scale_and_offset_shapes():
    variables, _, _ = linen_step(X)
    assert variables["params"]["scale"].shape == variables["params"]["bias"].shape == (C,)
    layer = nnx_layer()
    assert layer.scale[...].shape == layer.bias[...].shape == (C,)
    params, _ = haiku_fn().init(None, X, True)
    assert params["bn"]["scale"].shape == params["bn"]["offset"].shape == (1, C)
    bn, _ = eqx_layer(mode="batch")
    assert bn.weight.shape == bn.bias.shape == (C,)
    layer = keras_layer()
    assert layer.gamma.shape == layer.beta.shape == (C,)


# --- train/eval switch, per-example vs batched, cross-device argument ---------------------


def test_train_eval_switches():
    # Linen: `use_running_average` has no default; it must be given at construction or call.
    assert nn.BatchNorm.use_running_average is None
    with pytest.raises(ValueError, match="use_running_average"):
        nn.BatchNorm().init(jax.random.key(0), X)
    # NNX: trains by default; model.eval() switches to the running statistics.
    layer = nnx_layer()
    assert layer.use_running_average is False
    layer.eval()
    assert layer.use_running_average is True
    # Haiku: `is_training` is a required argument of every call.
    assert inspect.signature(hk.BatchNorm.__call__).parameters["is_training"].default is (
        inspect.Parameter.empty
    )
    # Equinox: `inference=False` by default, toggled by eqx.nn.inference_mode.
    bn, _ = eqx_layer(mode="batch")
    assert bn.inference is False
    assert eqx.nn.inference_mode(bn).inference is True
    # Keras: `training`, None by default, which means inference: the moving statistics are
    # used and not updated (stateless_call without training=True trains nothing).
    assert (
        inspect.signature(keras.layers.BatchNormalization.call).parameters["training"].default
        is None
    )
    y, stats = keras_call(keras_layer(), X)
    np.testing.assert_allclose(y, X / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(stats["moving_mean"], np.zeros(C))


def test_equinox_is_per_example_under_a_named_vmap_the_others_batched():
    bn, st = eqx_layer(mode="batch")
    with pytest.raises(NameError):
        bn(jnp.asarray(X[0]), st)  # no vmap axis named "b"
    y, _ = eqx_call(bn, st, X)
    _, y_linen, _ = linen_step(X)
    np.testing.assert_allclose(y, y_linen, rtol=1e-5, atol=1e-6)


def test_cross_device_arguments():
    assert nn.BatchNorm.axis_name is None
    assert inspect.signature(nnx.BatchNorm.__init__).parameters["axis_name"].default is None
    assert inspect.signature(hk.BatchNorm.__init__).parameters["cross_replica_axis"].default is None
    eqx_axis = inspect.signature(eqx.nn.BatchNorm.__init__).parameters["axis_name"]
    assert eqx_axis.default is inspect.Parameter.empty  # required
    # Keras: `synchronized=False`; True is refused on the JAX backend.
    assert keras_layer().synchronized is False
    with pytest.raises(ValueError, match="synchronized=True is only supported with the Tensor"):
        keras.layers.BatchNormalization(synchronized=True)


def test_keras_normalises_as_x_times_inv_plus_an_offset():
    rng = np.random.default_rng(0)
    x = jnp.asarray((rng.standard_normal((64, 32)) * 3 + 1).astype(np.float32))
    bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    bn.build((None, 32))
    gamma = jnp.asarray(rng.standard_normal(32).astype(np.float32))
    beta = jnp.asarray(rng.standard_normal(32).astype(np.float32))
    y, _ = bn.stateless_call([gamma, beta], [jnp.zeros(32), jnp.ones(32)], x, training=True)
    mean, var = jnp.mean(x, 0), jnp.var(x, 0)  # two-pass
    inv = jax.lax.rsqrt(var + 1e-5) * gamma
    np.testing.assert_array_equal(y, x * inv + (beta - mean * inv))  # Keras's formula, eager
    # Flax's layer, same settings and input: not bitwise (the formula and the variance's),
    # within 7.2e-7 here on outputs of order 1 (tens of thousands of ULP near zero).
    linen = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    variables = {
        "params": {"scale": gamma, "bias": beta},
        "batch_stats": {"mean": jnp.zeros(32), "var": jnp.ones(32)},
    }
    y_flax, _ = linen.apply(variables, x, mutable=["batch_stats"])
    diff = np.max(np.abs(np.asarray(y, np.float64) - np.asarray(y_flax, np.float64)))
    assert 0 < diff <= 2e-6, diff


# --- Equinox's mode ----------------------------------------------------------------------


def test_equinox_mode_unset_warns_and_trains_on_running_statistics():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bn, st = eqx_layer()
    assert bn.mode == "ema"
    assert any("mode" in str(w.message) for w in caught)
    x2 = X[::-1] * 2 + 1
    _, st = eqx_call(bn, st, X)  # first call: batch statistics
    y2, _ = eqx_call(bn, st, x2)
    mean2, var2 = x2.astype(np.float64).mean(0), x2.astype(np.float64).var(0)
    blend_mean = 0.01 * mean2 + 0.99 * MEAN  # normalises with the updated running stats
    blend_var = 0.01 * var2 + 0.99 * VAR
    np.testing.assert_allclose(y2, (x2 - blend_mean) / np.sqrt(blend_var + 1e-5), rtol=1e-4)
    assert not np.allclose(y2, (x2 - mean2) / np.sqrt(var2 + 1e-5), rtol=1e-2)


# --- the --defaults comparison ------------------------------------------------------------


FAST_DRIFT = ("--impls", "flax_linen,keras", "--loop", "harness", "--steps", "20")
"""The fast tier's drift run: the two frameworks whose defaults differ most (Keras's momentum
and epsilon, Flax's momentum), 20 steps of the harness loop."""


def test_defaults_mode_names_kerass_epsilon_and_both_momenta_in_20_steps(cli_run):
    run = cli_run("compare", "--model", "mlp-bn", "--defaults", *FAST_DRIFT)
    assert run.code == 1, run.output[-3000:]  # it drifts
    comparison = run.json["comparison"]
    assert comparison["reference"] == "flax_linen/aligned" and comparison["agree"] is False
    drift = {(d["impl"], d["knob"]): d for d in comparison["drift"]}
    assert set(drift) == {("flax_linen", k) for k in ("all", "momentum")} | {
        ("keras", k) for k in ("all", "momentum", "epsilon")
    }
    # Flax's momentum moves only the running statistics (measured 0.96 by step 20): training,
    # which normalises with the batch's, is bitwise; Keras's epsilon moves training too.
    assert drift[("flax_linen", "momentum")]["loss_max_abs"] == 0.0
    assert drift[("keras", "epsilon")]["loss_max_abs"] > 1e-4
    assert drift[("keras", "momentum")]["loss_max_abs"] < 1e-5
    for impl in ("flax_linen", "keras"):
        d = drift[(impl, "momentum")]
        assert d["responsible"] and d["state_max_abs"] > 0.1 and d["eval_max_abs"] > 1e-2, impl


@pytest.mark.slow  # every framework over 200 steps (the README's run); the fast tier's is above
def test_defaults_mode_drifts_and_names_the_defaults_responsible(mlp_bn_defaults_run):
    # `state-rosetta compare --model mlp-bn --defaults`: 200 steps, every framework and loop.
    run = mlp_bn_defaults_run.run
    assert mlp_bn_defaults_run.code == 1, mlp_bn_defaults_run.output[-3000:]  # it drifts
    assert run.errors == {}
    assert run.config["mode"] == "defaults"
    assert run.comparison["agree"] is False
    assert run.comparison["reference"] == "flax_linen/aligned"
    drift = {(d["impl"], d["knob"]): d for d in run.comparison["drift"]}
    # Training loss: only Equinox's default mode="ema" changes what training computes.
    assert drift[("equinox", "mode")]["loss_max_abs"] > 1e-2
    assert drift[("equinox", "mode")]["responsible"]
    for impl in ("flax_linen", "flax_nnx", "haiku"):
        assert drift[(impl, "all")]["loss_max_abs"] < 1e-5, impl
    # Keras's epsilon 1e-3 also changes training (the normalised activations).
    assert drift[("keras", "epsilon")]["responsible"]
    assert drift[("keras", "epsilon")]["loss_max_abs"] > 1e-4
    assert {k for i, k in drift if i == "keras"} == {"all", "momentum", "epsilon"}  # sgd
    # Running statistics and eval: every framework's momentum default moves them.
    for impl in MLP_BN_IMPLS:
        d = drift[(impl, "momentum")]
        assert d["responsible"] and d["eval_max_abs"] > 1e-2, impl
    # Haiku's debiasing and Equinox's counter change the running statistics early on.
    assert drift[("haiku", "state")]["state_max_abs"] > 1e-2
    assert drift[("equinox", "state")]["state_max_abs"] > 1.0  # the var EMA from 1, debiased
    # Flax keeps no default here other than momentum: its initial statistics are canonical.
    assert {k for i, k in drift if i == "flax_linen"} == {"all", "momentum"}


@pytest.mark.slow  # a second defaults run, with adam; the sgd one is fast
def test_defaults_mode_with_adam_names_kerass_optimizer_default(cli_run):
    # Keras's Adam keeps epsilon 1e-7 (optax: 1e-8); measured in its native loop against the
    # same loop with the optimizer aligned, it moves the results.
    run = cli_run(
        "compare",
        "--model",
        "mlp-bn",
        "--defaults",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--impls",
        "flax_linen,keras",
        "--loop",
        "harness,native",
    )
    assert run.code == 1, run.output[-3000:]
    drift = {(d["impl"], d["knob"]): d for d in run.json["comparison"]["drift"]}
    optimizer = drift[("keras", "optimizer")]
    assert optimizer["default"].startswith("Adam(epsilon=1e-7)")
    assert optimizer["responsible"] and optimizer["state_max_abs"] > 1e-3
    assert ("flax_linen", "optimizer") not in drift  # optax in every Flax loop
    assert "keras drifts because of its default Adam(epsilon=1e-7)" in run.output


def _table(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_the_docs_table_names_existing_tests():
    # docs/batchnorm.md's table names this file in its header by its path from the
    # repository's root (tests/mlp_bn/test_mlp_bn_defaults.py), and a test for every row.
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()
    docs_text = (ROOT / "docs" / "batchnorm.md").read_text()
    docs = _table(docs_text)
    assert docs and docs[0].endswith(f"| test (`{this}`) |"), docs[:1]
    # Every test file (and test) that docs/batchnorm.md names exists.
    for path, test in re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", docs_text):
        assert (ROOT / path).is_file(), path
        assert not test or f"def {test}(" in (ROOT / path).read_text(), (path, test)
    rows = [row.split(" | ")[0].strip("| ") for row in docs[1:]]
    assert rows == [
        "momentum or decay",
        "epsilon",
        "variance formula",
        "initial running statistics",
        "debiasing",
        "scale and offset shapes",
        "train/eval switch",
        "per-example or batched",
        "cross-device argument",
    ]
    source = Path(__file__).read_text()
    for row in docs[1:]:
        names = re.findall(r"`(test_\w+)`", row.rsplit(" | ", 1)[1])
        assert names, row
        for name in names:
            assert f"def {name}(" in source, name
