"""mlp-bn, aligned: four built-in BatchNorms trained on digits agree step by step and at eval.

The 200-step sgd run over every framework and loop is the session's `mlp_bn_run` (the
command line's default `compare --model mlp-bn`, read back from its JSON), in the slow tier;
the fast tier reads the same run over 20 steps (`mlp_bn_short_run`). The adam run is smaller
(the harness loop only) and made here, once.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import DIGITS_ACCURACY, MLP_BN_IMPLS, against_reference, measured_on_the_311_set

import shared
from shared.cli import main
from shared.models import mlp_bn

ROOT = Path(__file__).parent.parent.parent
FRAMEWORKS = MLP_BN_IMPLS
# The 200-step sgd run ends within the bounds on the 3.11 set; on the 3.12 set one relu input
# (step 93, example 27, unit 30) is within rounding of 0, and Keras rounds it to the other side.
ON_311_SET = measured_on_the_311_set("mlp-bn's stated bounds for the 200-step sgd run")


@functools.cache
def adam_run() -> shared.CompareResult:
    """`compare --model mlp-bn --optimizer adam --lr 0.01 --loop harness`."""
    options = shared.CompareOptions(model="mlp-bn", optimizer="adam", lr=0.01, loops=("harness",))
    return shared.run_compare(options)


def _evals(run: shared.SavedRun) -> dict[str, dict[str, float]]:
    return {k: t["eval"] for k, t in run.raw["trajectories"].items() if "eval" in t}


@pytest.mark.slow  # the 200-step run
@ON_311_SET
def test_aligned_sgd_run_agrees_with_stated_bounds(mlp_bn_run):
    run = mlp_bn_run.run
    assert mlp_bn_run.code == 0, mlp_bn_run.output[-3000:]
    assert run.errors == {}
    assert run.config["steps"] == 200 and run.config["optimizer"] == "sgd"
    assert run.comparison["reference"] == "flax_linen/harness"
    pairs = run.comparison["pairs"]
    assert {p["a"] for p in pairs} == {
        f"{f}/{loop}" for f in FRAMEWORKS for loop in shared.LOOPS
    } - {"flax_linen/harness"}
    for pair in pairs:
        until = _judged_until(pair)
        if until < run.config["steps"]:
            # It parts running free, as rounding amplified does after tens of steps (a
            # formula bug parts at step 1): it must say why, and agree step by step.
            assert pair["verdict"] == "agrees locally" and until >= MIN_PARTING_STEP, pair
            assert (
                pair.get("lockstep") is None
                or pair["lockstep"]["isolated"]
                or (pair["lockstep"]["first_divergence"] is None)
            ), pair
        else:
            assert pair["first_divergence"] is None, pair
        # Up to where it parts: the issue expects <= 4 ULP; measured up to 6, stated bound 8.
        a, b = run.trajectories[pair["a"]], run.trajectories[pair["b"]]
        assert _loss_ulp(a, b, until) <= mlp_bn.LOSS.max_ulp, pair["a"]
        # Params and running statistics: every leaf at every step within mlp_bn.PARAMS.
        assert _max_abs(a, b, "params", until) <= mlp_bn.PARAMS.atol, pair["a"]
        assert _max_abs(a, b, "state", until) <= mlp_bn.PARAMS.atol, pair["a"]
    assert run.comparison["agree"] is True


MIN_PARTING_STEP = 20
"""A correct port parts from the reference running free only after rounding has been
amplified over tens of steps (measured: step 93 on an AVX2 x86-64 CPU for Haiku, step 199
for Equinox; never on an AVX-512 one); a formula bug parts at step 1."""


def _judged_until(pair: dict) -> int:
    """The last step whose free-running values are judged: all of them, or the step
    before the pair parts for a stated reason (`parting`)."""
    parting = pair.get("parting")
    return 10**9 if parting is None else parting["step"] - 1


def _loss_ulp(a: shared.Trajectory, b: shared.Trajectory, until: int) -> int:
    losses = zip(a.loss[:until], b.loss[:until], strict=True)
    return max(int(shared.ulp_distance(x, y)) for x, y in losses)


def _max_abs(a: shared.Trajectory, b: shared.Trajectory, kind: str, until: int) -> float:
    mine, theirs = getattr(a, kind), getattr(b, kind)
    return max(
        float(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).max())
        for name in mine
        for x, y in zip(mine[name][: until + 1], theirs[name][: until + 1], strict=True)
    )


@pytest.mark.slow  # the 200-step run
@ON_311_SET
def test_aligned_sgd_eval_outputs_and_accuracies(mlp_bn_run):
    run = mlp_bn_run.run
    evals = _evals(run)
    assert set(evals) == {f"{f}/{loop}" for f in FRAMEWORKS for loop in shared.LOOPS}
    accuracies = {k: ev["accuracy"] for k, ev in evals.items()}
    assert min(accuracies.values()) >= DIGITS_ACCURACY, accuracies
    assert len(set(accuracies.values())) == 1, accuracies  # equal, not merely close
    eval_diffs = run.comparison["eval"]["max_abs"]
    assert set(eval_diffs) == set(evals) - {"flax_linen/harness"}
    # A trajectory that parts running free (for a stated reason) has its outputs parted
    # with it: shown, not judged; every other one within the bound on eval logits.
    parted = {p["a"] for p in run.comparison["pairs"] if p.get("parting")}
    for name, diff in eval_diffs.items():
        assert name in parted or diff <= mlp_bn.EVAL_ATOL, (name, diff)
    # The eval loss is the mean cross-entropy of the test logits: recompute it independently.
    digits = mlp_bn.load_digits_split()
    impl = shared.make("haiku", mlp_bn.MlpBnConfig(), "mlp-bn")
    final = run.trajectories["haiku/harness"].final()
    params = {k[7:]: jnp.asarray(v) for k, v in final.items() if k.startswith("params.")}
    state = {k[6:]: jnp.asarray(v) for k, v in final.items() if k.startswith("state.")}
    logits, _ = impl.apply(*impl.from_canonical(params, state), digits.x_test, train=False)
    z = np.asarray(logits, np.float64)
    log_softmax = z - z.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    nll = -log_softmax[np.arange(len(z)), digits.y_test].mean()
    assert evals["haiku/harness"]["loss"] == pytest.approx(nll, rel=1e-5)  # float32
    assert evals["haiku/harness"]["accuracy"] == np.mean(z.argmax(1) == digits.y_test)


def test_every_framework_and_loop_agrees_over_20_steps(mlp_bn_short_run):
    assert mlp_bn_short_run.code == 0, mlp_bn_short_run.output[-3000:]
    pairs = mlp_bn_short_run.run.comparison["pairs"]
    assert {p["a"] for p in pairs} == {
        f"{f}/{loop}" for f in FRAMEWORKS for loop in shared.LOOPS
    } - {"flax_linen/harness"}
    # No pair parts this early (measured: the first parting is step 93, Haiku's).
    assert all(p["first_divergence"] is None and not p.get("parting") for p in pairs), pairs


def test_linen_and_nnx_are_bitwise_equal_and_loops_are_bitwise_within_a_framework(
    mlp_bn_short_run,
):
    t = mlp_bn_short_run.run.trajectories
    assert shared.compare(t["flax_nnx/harness"], t["flax_linen/harness"]).bitwise
    for f in FRAMEWORKS:
        for loop in ("native", "scan"):
            assert shared.compare(t[f"{f}/{loop}"], t[f"{f}/harness"]).bitwise, (f, loop)


def test_haiku_and_equinox_are_not_bitwise_so_the_tolerance_is_needed(mlp_bn_short_run):
    # If they became bitwise equal the stated tolerance would be stale: this says so.
    by_name = against_reference(mlp_bn_short_run.run.comparison["pairs"])
    assert by_name["haiku/harness"]["bitwise"] is False
    assert by_name["equinox/harness"]["bitwise"] is False
    # The saved trajectories say the same (the JSON's verdict is not taken on trust).
    t = mlp_bn_short_run.run.trajectories
    assert not shared.compare(t["haiku/harness"], t["flax_linen/harness"]).bitwise
    assert not shared.compare(t["equinox/harness"], t["flax_linen/harness"]).bitwise


def test_training_step_matches_a_float64_numpy_forward_and_ema():
    """An independent reference for one training step of the model as defined."""
    config = mlp_bn.MlpBnConfig()
    params, state = mlp_bn.canonical_init(config, seed=3)
    rng = np.random.default_rng(1)
    params = {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in params.items()}
    x = rng.random((16, 64), dtype=np.float32)
    p = {k: v.astype(np.float64) for k, v in params.items()}
    h = x @ p["dense1.kernel"] + p["dense1.bias"]
    mu, var = h.mean(0), h.var(0)  # biased batch variance
    z = np.maximum((h - mu) / np.sqrt(var + 1e-5) * p["bn.scale"] + p["bn.bias"], 0)
    logits = z @ p["dense2.kernel"] + p["dense2.bias"]
    for name in FRAMEWORKS:
        impl = shared.make(name, config, "mlp-bn")
        native = impl.from_canonical(*map(_jax, (params, state)))
        y, new_state = jax.jit(lambda p, s, x, impl=impl: impl.apply(p, s, x, train=True))(
            *native, x
        )
        # float32 against float64 over a 64-term dot and a normalisation: ~1e-6 relative.
        np.testing.assert_allclose(y, logits, rtol=1e-5, atol=1e-5, err_msg=name)
        _, canonical = impl.to_canonical(native[0], new_state)
        np.testing.assert_allclose(canonical["bn.mean"], 0.1 * mu, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(canonical["bn.var"], 0.9 + 0.1 * var, atol=1e-6, err_msg=name)


def _jax(values):
    return {k: jnp.asarray(v) for k, v in values.items()}


@pytest.mark.slow  # 200 adam steps in every framework; the fast tier's adam run is the next test's
def test_adam_drops_the_dense_bias_before_batchnorm_and_agrees():
    result = adam_run()
    assert result.errors == {}
    assert result.config["mlp"]["dense1_bias"] is False
    for traj in result.trajectories.values():
        assert "dense1.bias" not in traj.params
    for pair in result.pairs:
        assert pair.tolerance == mlp_bn.ADAM_PARAMS
        assert pair.loss_max_ulp <= mlp_bn.ADAM_LOSS.max_ulp
        assert pair.first_divergence is None, pair
    assert max(result.eval_diffs.values()) <= mlp_bn.EVAL_ATOL
    assert min(ev["accuracy"] for ev in result.evals.values()) >= DIGITS_ACCURACY


BIAS_DRIFT = 1e-3
"""How far apart the kept dense bias must drift in 60 adam steps, well above ADAM_PARAMS's
5e-6 (measured about 1e-2 after 60 steps, 1e-1 after 200)."""


def test_adam_with_the_dense_bias_kept_lets_it_drift_across_frameworks():
    """Why the bias is dropped: its true gradient is 0, and Adam scales the noise up to lr."""
    config = mlp_bn.MlpBnConfig(dense1_bias=True)
    digits = mlp_bn.load_digits_split()
    batches = mlp_bn.minibatches(digits.x_train, digits.y_train, 64, 60, 0)
    finals = {}
    for name in ("flax_linen", "equinox"):
        impl = shared.make(name, config, "mlp-bn")
        params, state = impl.from_canonical(*map(_jax, mlp_bn.canonical_init(config)))
        tx = shared.OptimizerConfig("adam", learning_rate=0.01).make()
        traj, _ = shared.run_harness(
            impl, params, state, tx, batches, mlp_bn.mlp_bn_loss, inputs=mlp_bn.mlp_bn_inputs
        )
        finals[name] = traj.final()
    a, b = finals["flax_linen"], finals["equinox"]
    drift = np.max(np.abs(a["params.dense1.bias"] - b["params.dense1.bias"]))
    kernel = np.max(np.abs(a["params.dense2.kernel"] - b["params.dense2.kernel"]))
    assert drift > BIAS_DRIFT
    assert kernel < mlp_bn.ADAM_PARAMS.atol  # the rest still agrees


def test_digits_are_scaled_stratified_and_batched_deterministically():
    d = mlp_bn.load_digits_split()
    assert d.x_train.dtype == np.float32 and d.x_train.shape[1] == 64
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert len(d.y_train) + len(d.y_test) == 1797 and len(d.y_test) == 450
    # Stratified: each class's share of the test split is within one example of 25%.
    for c in range(10):
        n = np.sum(d.y_train == c) + np.sum(d.y_test == c)
        assert abs(np.sum(d.y_test == c) - 0.25 * n) <= 1
    again = mlp_bn.load_digits_split()
    assert np.array_equal(d.x_test, again.x_test) and np.array_equal(d.y_train, again.y_train)
    b = mlp_bn.minibatches(d.x_train, d.y_train, 64, 30, seed=5)
    assert b.x.shape == (30, 64, 64) and b.labels.shape == (30, 64)
    # Each epoch is a fresh permutation without the remainder: rows carry their own index.
    ids = np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 64), np.float32)
    small = mlp_bn.minibatches(ids, np.arange(100) % 10, 30, 7, seed=0)
    drawn = small.x[:, :, 0].astype(int)
    for epoch in (drawn[0:3], drawn[3:6]):
        assert len(np.unique(epoch)) == 90  # 3 batches of 30, no repeats, 10 left out
    assert not np.array_equal(drawn[0:3], drawn[3:6])
    assert np.array_equal(small.labels, drawn % 10)  # labels travel with their rows
    assert np.array_equal(b.x, mlp_bn.minibatches(d.x_train, d.y_train, 64, 30, seed=5).x)
    assert not np.array_equal(b.x, mlp_bn.minibatches(d.x_train, d.y_train, 64, 30, seed=6).x)


def test_cli_mlp_bn_json_contract(tmp_path):
    out = tmp_path / "run.json"
    code = main(
        ["compare", "--model", "mlp-bn", "--impls", "flax_linen,haiku", "--loop", "harness",
         "--steps", "20", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    saved = shared.load_run(out)  # the JSON, and its .arrays.npz sidecar when it has one
    run = saved.raw
    assert run["model"] == "mlp-bn"
    assert run["config"]["mode"] == "aligned" and run["config"]["steps"] == 20
    assert set(run["trajectories"]) == {"flax_linen/harness", "haiku/harness"}
    for key, traj in run["trajectories"].items():
        assert set(traj["params"]) == set(mlp_bn.CANONICAL_PARAMS)
        assert set(traj["state"]) == set(mlp_bn.CANONICAL_STATE)
        loaded = saved.trajectories[key]
        assert len(traj["loss"]) == 20 and len(loaded.loss) == 20
        assert len(loaded.state["bn.var"]) == 21
        assert set(traj["eval"]) == {"loss", "accuracy"}
        assert isinstance(traj["eval"]["accuracy"], float)
    pair = run["comparison"]["pairs"][0]
    assert pair["loss_tolerance"]["max_ulp"] == mlp_bn.LOSS.max_ulp
    assert run["comparison"]["eval"]["atol"] == 1e-5


# What the documents state are the largest values measured on the machines the project was
# measured on (two x86-64 CPUs, whose XLA code differs: one run measured Haiku 6 and Equinox
# 4 ULP, another 5 and 6). So each stated number must hold as a bound on this machine, be
# no looser than the model's declared bound, and stay close to what is measured (a stale,
# loose number fails too: once the README said 4.8e-7 where a run measured 5.36e-7).
STATED = {
    "loss ULP": re.compile(r"Haiku and Equinox within (\d+) ULP of the loss"),
    "params": re.compile(r"params within ([0-9.]+e-\d+) and running statistics within"),
    "statistics": re.compile(r"running statistics within ([0-9.]+e-\d+) \(bound"),
    "eval logits": re.compile(r"eval logits within ([0-9.]+e-\d+) after state conversion"),
}
LOOSENESS = {
    "loss ULP": (1.0, 2),
    "params": (1.5, 0),
    "statistics": (1.5, 0),
    "eval logits": (1.5, 0),
}
"""(factor, plus) by which a stated number may exceed this machine's: another CPU's code."""


@pytest.mark.slow  # the 200-step run
@ON_311_SET
def test_the_numbers_the_docs_state_hold_for_the_run(mlp_bn_run):
    run = mlp_bn_run.run
    t = run.trajectories
    pairs = against_reference(run.comparison["pairs"])
    haiku_equinox = ("haiku", "equinox")
    evals = run.comparison["eval"]["max_abs"]
    # Up to where each pair parts running free, if it does (see MIN_PARTING_STEP).
    names = [f"{f}/{loop}" for f in haiku_equinox for loop in shared.LOOPS]
    ref = t["flax_linen/harness"]
    until = {n: _judged_until(pairs[n]) for n in names}
    unparted = [n for n in names if n in evals and "parting" not in pairs[n]]
    measured = {
        "loss ULP": max(_loss_ulp(t[n], ref, until[n]) for n in names),
        "params": max(_max_abs(t[n], ref, "params", until[n]) for n in names),
        "statistics": max(_max_abs(t[n], ref, "state", until[n]) for n in names),
        "eval logits": max((evals[n] for n in unparted), default=None),
    }
    declared = {
        "loss ULP": mlp_bn.LOSS.max_ulp,
        "params": mlp_bn.PARAMS.atol,
        "statistics": mlp_bn.PARAMS.atol,  # one bound for params and statistics
        "eval logits": mlp_bn.EVAL.atol,
    }
    for document in ("docs/batchnorm.md",):
        text = " ".join((ROOT / document).read_text().split())
        for what, pattern in STATED.items():
            match = pattern.search(text)
            assert match, (document, what)
            stated = float(match.group(1))
            factor, plus = LOOSENESS[what]
            assert stated <= declared[what], (document, what)
            if measured[what] is None:  # every trajectory parted: nothing to hold it to here
                continue
            assert measured[what] <= stated, (document, what, measured[what])
            assert stated <= factor * measured[what] + plus, (document, what, measured[what])
