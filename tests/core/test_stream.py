"""The streaming comparison: its statistics against NumPy by hand, the same on the device as
on the host, and a large run that keeps summaries (and a window of values) instead of steps."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

import shared
from shared.models import bias_adder


def _pair(a: np.ndarray, b: np.ndarray, tolerance=shared.BITWISE, device=False):
    stream = shared.PairStream(("a", "b"), tolerance)
    as_array = jnp.asarray if device else np.asarray
    stream.push(1, {"state.x": as_array(a)}, {"state.x": as_array(b)})
    return stream.result()


def _values(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    b = rng.standard_normal((7, 5)).astype(np.float32)
    b[0, 0] = 1e-3
    a = b.copy()
    a[2, 3] = np.nextafter(a[2, 3], np.float32(10))  # 1 ULP
    a[4, 1] += np.float32(0.25)  # far, in absolute terms
    a[0, 0] = -a[0, 0]  # across zero: billions of ULP, but 2e-3 apart
    return a, b


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_statistics_are_those_computed_by_hand(device):
    a, b = _values(np.random.default_rng(0))
    result = _pair(a, b, shared.Tolerance(max_ulp=1), device=device)
    ulps = shared.ulp_distance(a, b)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    assert result.max_ulp == int(ulps.max())
    np.testing.assert_allclose(result.max_abs, diff.max(), rtol=1e-7)  # float32 on device
    assert not result.bitwise
    (leaf,) = result.first_divergence.leaves
    # The worst element is the failing one furthest apart in absolute terms, not in ULPs.
    assert leaf.index == (4, 1) and leaf.failing == int((ulps > 1).sum()) == 2
    assert (leaf.a, leaf.b) == (a[4, 1], b[4, 1])
    assert leaf.ulp == ulps[4, 1]
    scale = np.abs(b).max()
    spacing = np.spacing(np.float32(scale))
    np.testing.assert_allclose(leaf.ulp_at_scale, diff.max() / spacing, rtol=1e-6)


def test_the_device_and_the_host_agree_on_every_statistic():
    rng = np.random.default_rng(1)
    for _ in range(5):
        a, b = _values(rng)
        host, device = _pair(a, b, device=False), _pair(a, b, device=True)
        assert (host.max_ulp, host.bitwise) == (device.max_ulp, device.bitwise)
        assert host.first_divergence.leaves[0].index == device.first_divergence.leaves[0].index
        np.testing.assert_allclose(host.max_abs, device.max_abs, rtol=1e-7)


def test_an_element_near_zero_is_many_ulp_of_itself_but_few_of_its_leaf():
    b = np.array([1000.0, 1e-12], np.float32)
    a = np.array([1000.0, 1e-12 + 7.6e-6], np.float32)
    result = _pair(a, b)
    assert result.max_ulp > 10**8  # 7.6e-6 is enormous next to 1e-12
    assert result.max_ulp_at_scale < 1  # and a fraction of one ULP of 1000


def test_nan_never_agrees_and_is_reported_as_nan():
    a = np.array([1.0, np.nan], np.float32)
    result = _pair(a, a.copy(), shared.Tolerance(max_ulp=10, atol=1.0))
    assert not result.bitwise and result.first_divergence is not None
    assert result.max_ulp == np.iinfo(np.int64).max and result.max_abs == np.inf


@pytest.fixture(scope="module")
def summary_run(tmp_path_factory):
    """A bias adder run kept as summaries, with a wrong-momentum port from step 3."""
    plugin = "tests/bias_adder/plugins/wrong_momentum.py:WrongMomentumFromStep"
    path = tmp_path_factory.mktemp("summaries") / "run.json"
    options = shared.CompareOptions(
        impls=("jax",), user_impls=(plugin,), loops=("harness",), steps=6, keep="summaries"
    )
    result = shared.run_compare(options)
    return result, shared.report.write_json(result, path)


def test_a_run_kept_as_summaries_holds_no_values_but_its_losses(summary_run):
    result, _ = summary_run
    assert result.kept == "summaries"
    for trajectory in result.trajectories.values():
        assert trajectory.params == {} and trajectory.state == {} and trajectory.steps == 6


def test_its_json_names_per_step_series_and_a_window_in_the_sidecar(summary_run):
    _, (path, sidecar) = summary_run
    raw = json.loads(path.read_text())
    assert raw["comparison"]["kept"] == "summaries"
    arrays = np.load(sidecar)
    pair = next(p for p in raw["comparison"]["pairs"] if p["a"] == "wrong_momentum/harness")
    assert pair["first_divergence"]["step"] == 5  # the plugin's FROM_STEP
    series = pair["series"]["state.mean"]
    rows = arrays[series["sidecar"]]
    assert series["columns"][:3] == ["step", "max_abs", "max_ulp"]
    assert list(rows[:, 0]) == list(range(7))  # steps 0..6, one row each
    assert rows[:5, 1].max() == 0 and rows[5, 1] > 0  # bitwise until step 5
    window = pair["window"]
    assert window["steps"] == [4, 5, 6]
    mine = arrays[window["a"]["state.mean"]["sidecar"]]
    theirs = arrays[window["b"]["state.mean"]["sidecar"]]
    assert mine.shape == (3, 4) and np.array_equal(mine[0], theirs[0])
    assert not np.array_equal(mine[1], theirs[1])
    # The window's values are the runs' own: the reference's is the bias adder at step 4.
    config = bias_adder.BiasAdderConfig(4)
    model = bias_adder.JaxBiasAdder(config)
    xs = bias_adder.as_batches("t", bias_adder.fixed_batch(8, 4, 0), config, 6)
    params, state = model.init(None, xs[0])
    tx = shared.OptimizerConfig().make()
    reference = shared.run_harness(model, params, state, tx, xs, bias_adder.bias_adder_loss)[0]
    assert np.array_equal(theirs[0], reference.state["mean"][4])


class _DonatingLoop:
    """A native loop whose step deletes the arrays it was holding, as a jitted step with
    donated buffers does (Keras's train step)."""

    def __init__(self):
        self.bias = jnp.zeros(3)

    def step(self, batch):
        old, self.bias = self.bias, self.bias + 1.0
        old.delete()
        return jnp.float32(0.0)

    def read(self):
        return {"bias": self.bias}, {}


class _Donating:
    name = "donating"

    def native_loop(self, params, state, tx):
        return _DonatingLoop()

    def to_canonical(self, params, state):
        return dict(params), dict(state)  # the loop's own arrays, as an identity mapping is


def test_a_native_runners_values_outlive_its_next_step_when_the_loop_donates():
    # The run holds the last steps' values for the window around a divergence: they must
    # still read after the loop's next step has deleted its own buffers.
    runner = shared.core.NativeRunner(_Donating(), {"bias": jnp.zeros(3)}, {}, None)
    runner.advance(None, None)
    held = runner.values()
    runner.advance(None, None)
    assert np.array_equal(np.asarray(held["params.bias"]), np.ones(3))
