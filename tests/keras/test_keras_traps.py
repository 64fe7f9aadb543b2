"""The Keras 3 traps met writing the Keras models, each shown failing and then fixed.

Every test shows the trap on Keras's own objects, then the fix the models use. The docs
carry one note per trap (`shared/models/bias_adder/_docs.py`, Keras gotchas).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import impl_keras  # selects the JAX backend before keras is imported

import keras  # isort: skip

import shared
from impl_keras import BiasAdderWithRunningMean
from shared.models import bias_adder

ROOT = Path(__file__).resolve().parents[2]
X = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32) + 0.5)


def _layer(**kwargs) -> BiasAdderWithRunningMean:
    layer = BiasAdderWithRunningMean(name="bias_adder", **kwargs)
    layer.build((None, 3))
    return layer


def _values(layer):
    return [v.value for v in layer.trainable_variables], [
        v.value for v in layer.non_trainable_variables
    ]


def _python(code: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter with `home` as $HOME and no Keras settings
    (matplotlib, imported by `shared`, keeps its cache in MPLCONFIGDIR, away from $HOME)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_")}
    mpl = str(home.parent / "mpl")
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "HOME": str(home), "MPLCONFIGDIR": mpl, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- the backend, and ~/.keras --------------------------------------------------------------


def test_plain_import_asks_for_tensorflow_and_writes_under_home(tmp_path):
    proc = _python("import keras", tmp_path)
    assert proc.returncode != 0
    assert "tensorflow" in proc.stderr.lower()
    written = json.loads((tmp_path / ".keras" / "keras.json").read_text())
    assert written["backend"] == "tensorflow"


def test_impl_keras_selects_jax_and_with_keras_home_writes_nothing_under_home(tmp_path):
    home, keras_home = tmp_path / "home", tmp_path / "keras-home"
    home.mkdir()
    code = "import impl_keras, keras; print(keras.backend.backend(), keras.config.floatx())"
    # Even a KERAS_BACKEND set to another backend: the package needs JAX, and sets it.
    proc = _python(code, home, KERAS_HOME=str(keras_home), KERAS_BACKEND="tensorflow")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["jax", "float32"]
    assert list(home.iterdir()) == []  # nothing under $HOME
    assert (keras_home / "keras.json").exists()


@pytest.mark.slow  # another fresh Python with Keras; the KERAS_HOME case is fast
def test_without_keras_home_impl_keras_writes_nothing_under_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = _python("import impl_keras, keras; print(keras.backend.backend())", home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["jax"]
    assert list(home.iterdir()) == []


@pytest.mark.slow  # another fresh Python with Keras
def test_a_users_own_keras_json_is_read_not_replaced(tmp_path):
    home = tmp_path / "home"
    (home / ".keras").mkdir(parents=True)
    (home / ".keras" / "keras.json").write_text(json.dumps({"floatx": "float64"}))
    proc = _python("import impl_keras", home)
    assert proc.returncode != 0  # read, and checked: this package trains in float32
    assert "keras: keras.config.floatx() is 'float64'" in proc.stderr


@pytest.mark.slow  # another fresh Python; the floatx case is the fast tier's clear error
def test_keras_imported_first_with_another_backend_is_a_clear_error(tmp_path):
    proc = _python(
        "import keras; import impl_keras",
        tmp_path,
        KERAS_BACKEND="numpy",
        KERAS_HOME=str(tmp_path / "kh"),
    )
    assert proc.returncode != 0
    assert "keras: Keras was imported with backend 'numpy' before impl_keras" in proc.stderr
    assert "KERAS_BACKEND=jax" in proc.stderr


def test_a_keras_json_with_another_floatx_is_a_clear_error(tmp_path):
    (tmp_path / "kh").mkdir()
    (tmp_path / "kh" / "keras.json").write_text(json.dumps({"floatx": "float16"}))
    proc = _python("import impl_keras", tmp_path, KERAS_HOME=str(tmp_path / "kh"))
    assert proc.returncode != 0
    assert "keras: keras.config.floatx() is 'float16'" in proc.stderr


def test_the_tests_keras_home_is_not_under_home():
    home = Path.home().resolve()
    assert home not in Path(os.environ["KERAS_HOME"]).resolve().parents
    assert keras.backend.backend() == "jax"


# --- calling a layer inside jax.jit ---------------------------------------------------------


def test_calling_a_layer_inside_jit_leaks_a_tracer_into_the_variable():
    layer = _layer()
    jax.jit(lambda x: layer(x, training=True))(X)
    assert isinstance(layer.mean.value, jax.core.Tracer)  # the trap: a leaked tracer
    with pytest.raises(jax.errors.TracerArrayConversionError):
        np.asarray(layer.mean.value)
    # The fix: stateless_call, values in and out.
    fixed = _layer()
    params, state = _values(fixed)
    _, new = jax.jit(lambda p, s, x: fixed.stateless_call(p, s, x, training=True))(params, state, X)
    np.testing.assert_allclose(new[0], 0.1 * np.asarray(X).mean(0), rtol=1e-6)


def test_calling_a_layer_inside_jit_bakes_the_values_in_as_constants():
    layer = _layer()
    predict = jax.jit(lambda x: layer(x))
    before = predict(X)
    layer.mean.assign(jnp.ones(3))
    np.testing.assert_array_equal(predict(X), before)  # the trap: stale values
    np.testing.assert_array_equal(layer(X), np.ones(3))  # eager sees the new mean
    # The fix: pass the values in.
    fixed = jax.jit(lambda p, s, x: layer.stateless_call(p, s, x)[0])
    np.testing.assert_array_equal(fixed(*_values(layer), X), np.ones(3))


# --- stateless_call skips what layer(x) does ------------------------------------------------


def test_stateless_call_without_training_does_not_update_the_state():
    layer = _layer()
    params, state = _values(layer)
    _, same = layer.stateless_call(params, state, X)  # the trap: no update, no error
    np.testing.assert_array_equal(same[0], np.zeros(3))
    _, new = layer.stateless_call(params, state, X, training=True)  # the fix
    assert not np.array_equal(new[0], np.zeros(3))


def test_stateless_call_skips_the_input_cast():
    x16 = X.astype(jnp.float16)
    layer = _layer()
    layer(x16, training=True)  # __call__ casts float16 inputs to the float32 compute dtype
    eager = np.asarray(layer.mean.value)
    params, state = _values(_layer())
    _, skipped = layer.stateless_call(params, state, x16, training=True)  # float16 mean
    _, cast = layer.stateless_call(params, state, x16.astype(jnp.float32), training=True)
    np.testing.assert_array_equal(cast[0], eager)  # the fix: cast the input yourself
    assert not np.array_equal(skipped[0], eager)


# --- Variable.assign checks shapes and casts dtypes -----------------------------------------


def test_assign_checks_the_shape_so_keepdims_cannot_be_written():
    layer = _layer(keepdims=True)
    params, state = _values(layer)
    with pytest.raises(ValueError, match="The shape of the target variable"):
        layer.stateless_call(params, state, X, training=True)


def test_assign_casts_to_the_variables_dtype_silently():
    variable = keras.Variable(np.zeros(3, np.float32), name="v")
    variable.assign(np.asarray([1.7, 2.0, 3.0], np.float64))
    assert variable.dtype == "float32"
    variable.assign(jnp.asarray([1.7, 2.0, 3.0], jnp.float16))
    assert variable.dtype == "float32"
    assert variable.value[0] == np.float32(np.float16(1.7))  # float16's rounding, kept


def test_train_on_batch_donates_the_buffers_of_assigned_arrays():
    model = impl_keras.BiasAdderModel(_layer(), name="m")
    model.compile(optimizer=keras.optimizers.SGD(0.02))
    mine = jnp.asarray(np.ones(3, np.float32))
    model.adder.bias.assign(mine)  # the array itself, not a copy
    model.train_on_batch(X)
    assert mine.is_deleted()  # the trap: the jitted step donated it
    # The fix (`impl_keras._adapter.assign`): assign a copy.
    kept = jnp.asarray(np.ones(3, np.float32))
    model.adder.bias.assign(jnp.copy(kept))
    model.train_on_batch(X)
    assert not kept.is_deleted()


# --- a traced momentum ----------------------------------------------------------------------


class TracedMomentumBiasAdder(impl_keras.KerasBiasAdder):
    """The Keras bias adder with its momentum as a JAX array, not a Python float."""

    def make(self):
        c = self.config
        layer = BiasAdderWithRunningMean(jnp.float32(c.momentum), name="bias_adder")
        layer.build((None, c.features))
        return layer


def test_a_traced_momentum_breaks_bitwise_equality():
    config = bias_adder.BiasAdderConfig(3)
    xs = np.asarray(np.random.default_rng(1).standard_normal((5, 4, 3)), np.float32)
    tx = shared.OptimizerConfig().make()

    def train(impl):
        params, state = impl.init(jax.random.key(0), xs[0])
        return shared.run_harness(impl, params, state, tx, xs, bias_adder.bias_adder_loss)[0]

    reference = train(shared.make("jax", config))
    assert shared.compare(train(shared.make("keras", config)), reference).bitwise
    traced = shared.compare(train(TracedMomentumBiasAdder(config)), reference)
    assert not traced.bitwise  # 1 - float32(0.9) = 0.100000024, not 0.1
    assert traced.first_divergence is not None and traced.first_divergence.step == 1


# --- train_on_batch's loss is its tracker's -------------------------------------------------


def test_train_on_batch_returns_the_loss_tracker_mean():
    """keras.metrics.Mean weighted by the batch size: (loss * B) / B, in float32."""
    config = bias_adder.BiasAdderConfig(3)
    impl = shared.make("keras", config)
    tx = shared.OptimizerConfig().make()
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((64, 1, 5, 3)).astype(np.float32) + 0.5  # 64 candidates, B = 5
    params, state = impl.init(jax.random.key(0), xs[0, 0])

    def first_loss(x):
        return np.float32(
            shared.run_harness(impl, params, state, tx, x, bias_adder.bias_adder_loss)[0].loss[0]
        )

    def tracked(loss):
        return np.float32(np.float32(loss * np.float32(5)) / np.float32(5))

    # A batch whose loss does not survive the round trip (most do).
    x = next(x for x in xs if tracked(first_loss(x)) != first_loss(x))
    loss = first_loss(x)
    reported = np.float32(impl.native_loop(params, state, tx).step(x[0]))
    assert reported == tracked(loss) != loss
    assert shared.ulp_distance(reported, loss) == 1
    # A batch of 8, a power of 2: the tracker's mean is the loss itself.
    x8 = np.concatenate([x, x[:, :3]], axis=1)
    assert np.float32(impl.native_loop(params, state, tx).step(x8[0])) == first_loss(x8)
