"""mlp-dropout: randomness as state. Aligned keys agree across frameworks; native keys agree
within each framework, differ across them as expected, and train to the same distribution;
the key each dropout call used is traced, and reuse is caught."""

from __future__ import annotations

import functools
from dataclasses import replace

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import DIGITS_ACCURACY, where

import shared
from shared.models import mlp_dropout
from shared.models.mlp_bn import digits, minibatches

IMPLS = list(shared.implementations("mlp-dropout"))


@pytest.fixture(scope="module")
def aligned_run(cli_run):
    return cli_run("compare", "--model", "mlp-dropout")


@pytest.mark.slow  # the README's 200-step run in every loop (the fast tier checks each
# framework's masks against the aligned keys below)
def test_aligned_keys_agree_across_frameworks_in_every_loop(aligned_run):
    assert aligned_run.code == 0, aligned_run.output[-3000:]
    raw = aligned_run.json
    assert raw["comparison"]["reference"] == "flax_linen/harness"
    assert set(raw["trajectories"]) == {f"{i}/{loop}" for i in IMPLS for loop in shared.LOOPS}
    for pair in raw["comparison"]["pairs"]:
        _bitwise_or_equinox_within_its_bound(pair)  # the same masks, the same programs
    accuracies = {k: t["eval"]["accuracy"] for k, t in raw["trajectories"].items()}
    assert min(accuracies.values()) >= DIGITS_ACCURACY, accuracies
    assert len(set(accuracies.values())) == 1, accuracies  # equal, not merely close


def _bitwise_or_equinox_within_its_bound(pair: dict) -> None:
    """Bitwise, except Equinox against the other frameworks, whose vmapped dot products sum
    in their order on some CPUs only: there, within its declared bound and not bitwise-claimed."""
    if pair["a"].startswith("equinox/") and pair["kind"] == "across" and not pair["bitwise"]:
        assert pair["first_divergence"] is None, pair
        assert pair["tolerance"]["atol"] == mlp_dropout.EQUINOX_ALIGNED.atol, pair
        return
    assert pair["bitwise"], pair


KERAS_ADAM_ACCURACY = 0.01
"""How far Keras's own Adam may move the test accuracy from the others': its update differs
by rounding only (epsilon before the bias correction), so by a point at most."""


@pytest.mark.slow  # a second 200-step run, every framework and loop
def test_aligned_keys_agree_bitwise_with_adam_too(cli_run):
    run = cli_run("compare", "--model", "mlp-dropout", "--optimizer", "adam", "--lr", "0.01")
    assert run.code == 0, run.output[-3000:]
    for pair in run.json["comparison"]["pairs"]:
        if pair["a"] == "keras/native":  # Keras's own Adam: epsilon before the bias correction
            assert pair["expected"] and not pair["bitwise"], pair
            assert "sqrt(v_hat)" in pair["tolerance"]["reason"]
        else:
            _bitwise_or_equinox_within_its_bound(pair)
    trajectories = run.json["trajectories"]
    accuracies = {t["eval"]["accuracy"] for k, t in trajectories.items() if k != "keras/native"}
    assert len(accuracies) == 1 and min(accuracies) >= DIGITS_ACCURACY, accuracies
    keras = trajectories["keras/native"]["eval"]["accuracy"]
    assert abs(keras - accuracies.pop()) <= KERAS_ADAM_ACCURACY


@functools.cache
def _first_step(impl_name: str):
    config = mlp_dropout.MlpDropoutConfig(keys="aligned")
    impl = shared.make(impl_name, config, "mlp-dropout")
    params = {k: jnp.asarray(v) for k, v in mlp_dropout.canonical_init(config, 3).items()}
    native_params, state = impl.from_canonical(params, {})
    x = jnp.asarray(digits().x_train[:16])
    key = jax.random.key(11)
    logits, _ = impl.apply(native_params, state, x, train=True, key=key)
    return params, x, key, np.asarray(logits)


@pytest.mark.parametrize("impl_name", IMPLS)
def test_each_framework_drops_with_exactly_the_aligned_key(impl_name):
    params, x, key, logits = _first_step(impl_name)
    # By hand, in float64: relu(x W1 + b1), the mask bernoulli(fold_in(key, 0), 0.9), then W2.
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h = np.maximum(np.asarray(x, np.float64) @ p["dense1.kernel"] + p["dense1.bias"], 0)
    keep = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 0), 0.9, h.shape))
    expected = np.where(keep, h / 0.9, 0) @ p["dense2.kernel"] + p["dense2.bias"]
    assert 0 < (~keep).sum() < keep.size  # some units dropped, not all
    # float32 matmuls against float64: a few ULP of values of size ~1.
    np.testing.assert_allclose(logits, expected, rtol=0, atol=2e-5)
    other = _first_step(IMPLS[0])[3]
    assert np.array_equal(logits, other) or np.max(np.abs(logits - other)) < 2e-6


@pytest.mark.parametrize("impl_name", IMPLS)
def test_training_without_a_key_is_a_clear_error(impl_name):
    config = mlp_dropout.MlpDropoutConfig(keys="aligned")
    impl = shared.make(impl_name, config, "mlp-dropout")
    params = {k: jnp.asarray(v) for k, v in mlp_dropout.canonical_init(config).items()}
    native_params, state = impl.from_canonical(params, {})
    with pytest.raises(ValueError, match=f"{impl_name}: mlp-dropout needs a key"):
        impl.apply(native_params, state, jnp.asarray(digits().x_train[:4]), train=True)


@pytest.mark.parametrize("rate", ["1.0", "-0.1"])
def test_a_rate_outside_0_1_exits_2(cli_run, rate):
    run = cli_run("compare", "--model", "mlp-dropout", "--rate", rate)
    assert run.code == 2
    assert "mlp-dropout: rate must be in [0, 1)" in run.output


# --- native keys ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def native_run(cli_run):
    return cli_run("compare", "--model", "mlp-dropout", "--native")  # the README's: 20 seeds


STREAM_LEAF = {"flax_nnx": "state.dropout.rngs.count", "keras": "state.dropout.seed"}
"""The frameworks that keep their dropout stream in the model's state, and its first leaf."""


@pytest.mark.slow  # the native run: 20 seeds in every framework
def test_native_keys_each_framework_equals_itself_and_differs_from_the_others(native_run):
    assert native_run.code == 0, native_run.output[-3000:]
    raw = native_run.json
    for pair in raw["comparison"]["pairs"]:
        impl = pair["a"].partition("/")[0]
        if impl == pair["b"].partition("/")[0]:
            assert pair["first_divergence"] is None, pair
        elif impl in STREAM_LEAF:  # its RNG stream is state, which the reference has not
            assert pair["expected"], pair
            assert where(pair["first_divergence"]) == {"step": 0, "leaf": STREAM_LEAF[impl]}
        else:  # the masks differ from the first step: reported as expected, not failed
            assert pair["expected"] and pair["first_divergence"]["step"] == 1, pair
    counts = raw["comparison"]["counts"]
    assert counts["diverge"] == 0 and counts["expected"] == 4 * len(shared.LOOPS)
    assert "differ as expected" in native_run.output


@pytest.mark.slow  # the native run; the check's power test is fast
def test_native_statistical_check_names_the_test_and_prints_p_values(native_run):
    seeds = native_run.json["comparison"]["seeds"]
    assert seeds["test"].startswith("two-sided Mann-Whitney U")
    assert len(seeds["seeds"]) >= 20 and len(seeds["pairs"]) == 10  # 5 frameworks
    for pair in seeds["pairs"]:
        assert pair["p"] >= seeds["threshold"], pair
        assert f"{pair['p']:.3g}" in native_run.output
    for name, s in seeds["accuracies"].items():
        assert len(s["accuracies"]) == 20 and s["mean"] >= 0.9, name


POWER_STEPS = 20
"""The power test's training steps: rate 0.5 against 0.1 parts the accuracies long before the
default 200 (measured p = 3.5e-04 at 20 steps against a threshold of 0.05, 6.6e-08 at 50)."""


def test_the_statistical_check_has_power_rate_half_against_rate_tenth(tmp_path):
    linen = shared.load_factory(shared.implementations("mlp-dropout")["flax_linen"])

    class HalfRate:
        def __init__(self, config):
            self.inner = linen(replace(config, rate=0.5))
            self.name, self.model = "linen-rate-0.5", self.inner.model

        def __getattr__(self, attr):
            return getattr(self.inner, attr)

    result = shared.cross_validate(
        mlp_dropout.SPEC,
        [linen, HalfRate],
        mode="native",
        loops=["harness"],
        steps=POWER_STEPS,
        options={"seeds": 20},
    )
    seeds = result.analysis("seeds")
    (pair,) = seeds["pairs"]
    assert pair["p"] < seeds["threshold"], pair
    assert not result.agree
    (analysis,) = [a for a in result.analyses if a.key == "seeds"]
    analysis.plot(tmp_path / "seeds.png")  # the distributions, as --plot draws them
    assert (tmp_path / "seeds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # the native run; key tracing is fast in the tests below
def test_native_keys_are_traced_new_every_step_and_the_same_in_both_loops(native_run):
    keys = native_run.json["comparison"]["keys"]
    assert keys["problems"] == []
    for name in IMPLS:
        harness = keys["keys"][name]["harness"]
        assert len(harness) == keys["steps"] and len(set(harness)) == len(harness)
        assert keys["keys"][name]["native"] == harness
    # The frameworks derive different keys from the same seed.
    assert len({keys["keys"][name]["harness"][0] for name in IMPLS}) == len(IMPLS)


# --- key reuse is caught --------------------------------------------------------------------


def test_a_haiku_model_that_reuses_one_key_for_two_layers_is_caught():
    def forward(x):
        key = hk.next_rng_key()
        h = hk.dropout(key, 0.1, x)
        return hk.dropout(key, 0.1, h)  # the bug: the same key again

    f = hk.transform(forward)
    x = jnp.ones((4, 8))
    with mlp_dropout.recording_keys() as log:
        jax.jit(f.apply)(None, jax.random.key(0), x)
    assert log.reused() == [(0, 1)]


def test_an_nnx_model_that_passes_one_key_to_two_layers_is_caught():
    class Twice(nnx.Module):
        def __init__(self):
            self.a, self.b = nnx.Dropout(0.1), nnx.Dropout(0.1)

        def __call__(self, x, key):
            return self.b(self.a(x, rngs=key), rngs=key)  # the bug: one key, two layers

    with mlp_dropout.recording_keys() as log:
        nnx.jit(Twice.__call__)(Twice(), jnp.ones((4, 8)), jax.random.key(0))
    assert log.reused() == [(0, 1)]
    with mlp_dropout.recording_keys() as ok:
        rngs = nnx.Rngs(dropout=0)
        a, b = nnx.Dropout(0.1, rngs=rngs), nnx.Dropout(0.1, rngs=rngs)
        b(a(jnp.ones((4, 8))))
    assert ok.reused() == [] and len(ok.keys) == 2


def test_an_implementation_that_ignores_its_key_is_reported():
    equinox = shared.load_factory(shared.implementations("mlp-dropout")["equinox"])

    class FixedKey:
        def __init__(self, config):
            self.inner = equinox(config)
            self.name, self.model = "fixed-key", self.inner.model

        def apply(self, params, state, x, *, train, key=None):
            return self.inner.apply(params, state, x, train=train, key=jax.random.key(0))

        def __getattr__(self, attr):
            return getattr(self.inner, attr)

    result = shared.cross_validate(
        mlp_dropout.SPEC, [equinox, FixedKey], loops=["harness"], steps=5
    )
    (pair,) = result.pairs
    assert pair.first_divergence is not None and pair.first_divergence.step == 1
    with mlp_dropout.recording_keys() as log:
        batches = minibatches(digits().x_train, digits().y_train, 8, 3, 0)
        config = mlp_dropout.MlpDropoutConfig(keys="native")
        impl = FixedKey(config)
        params = {k: jnp.asarray(v) for k, v in mlp_dropout.canonical_init(config).items()}
        p, s = impl.from_canonical(params, {})
        shared.run_harness(
            impl, p, s, shared.OptimizerConfig().make(), batches, mlp_dropout.SPEC.loss,
            inputs=mlp_dropout.SPEC.inputs, keys=shared.step_keys(0, 3),
        )  # fmt: skip
    assert log.reused() == [(0, 1), (0, 2)]  # the same key at every step
