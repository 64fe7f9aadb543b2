"""The bias stack's definition checked by hand (a first step worked out on paper), its
canonical round trips, its config errors and its bench shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shared
from shared.cli import main
from shared.models import bias_stack
from shared.models.bias_stack import BiasStackConfig, bias_stack_loss, bias_stack_oracle

IMPLS = list(shared.implementations("bias-stack"))

# Depth 2, momentum 0.9, sgd with lr 0.02, one step on x = [[1], [3]] (B = 2, D = 1), from
# identity kernels (W_0 = W_1 = [[1]]), zero biases and zero means. By hand, from the definition
# (z_l = h_l @ W_l, mean_l <- 0.9 mean_l + 0.1 batch_mean(z_l), a_l = mean_l + bias_l,
# h_{l+1} = z_l - a_l):
#   block 0: z_0 = [1, 3];     batch_mean 2;   mean_0 = 0.1 * 2   = 0.2;  h_1 = [0.8, 2.8]
#   block 1: z_1 = [0.8, 2.8]; batch_mean 1.8; mean_1 = 0.1 * 1.8 = 0.18; h_2 = [0.62, 2.62]
#   loss = sum((x - h_2)**2) = 2 * 0.38**2 = 0.2888
# Backward: g_2 = dloss/dh_2 = -2 (x - h_2) = [-0.76, -0.76]
#   dloss/dbias_1 = dloss/da_1 = -sum_b g_2 = 1.52
#   dloss/dz_1 = g_2 + (1 - 0.9) / 2 * 1.52 = -0.76 + 0.076 = -0.684 (each row; each row of
#     z_1 also moves batch_mean(z_1), hence mean_1 and a_1)
#   dloss/dW_1 = h_1^T dz_1 = (0.8 + 2.8) * -0.684 = -2.4624
#   g_1 = dz_1 W_1^T = -0.684 (each row)
#   dloss/dbias_0 = -sum_b g_1 = 1.368
#   dloss/dz_0 = -0.684 + 0.05 * 1.368 = -0.6156;  dloss/dW_0 = (1 + 3) * -0.6156 = -2.4624
# sgd: bias_1 = -0.02 * 1.52 = -0.0304, bias_0 = -0.02 * 1.368 = -0.02736,
#      W_1 = W_0 = 1 + 0.02 * 2.4624 = 1.049248.
# Eval after the step (means kept): a_0 = 0.2 - 0.02736 = 0.17264, a_1 = 0.18 - 0.0304 = 0.1496;
#   h_1 = 1.049248 x - 0.17264 = [0.876608, 2.975104]
#   y = 1.049248 h_1 - 0.1496 = [0.919779191 - 0.1496, 3.121621922 - 0.1496]
#     = [0.770179191, 2.972021922]
X = np.array([[1.0], [3.0]], np.float32)
FIRST_STEP = {
    "loss": 0.2888,
    "params": {
        "layers.0.kernel": [[1.049248]],
        "layers.0.bias": [-0.02736],
        "layers.1.kernel": [[1.049248]],
        "layers.1.bias": [-0.0304],
    },
    "state": {"layers.0.mean": [0.2], "layers.1.mean": [0.18]},
    "eval": [[0.770179191], [2.972021922]],
}
CONFIG = BiasStackConfig(depth=2, features=1, momentum=0.9)
SGD = shared.OptimizerConfig("sgd", learning_rate=0.02)


def _close(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLS)
def test_first_step_at_depth_2_matches_the_hand_computed_values(impl):
    model = shared.make(impl, CONFIG, "bias-stack")
    x = jnp.asarray(X)
    params, state = model.init(jax.random.key(0), x)
    tx = SGD.make()
    step = jax.jit(shared.TrainStep(model, bias_stack_loss, tx))
    params, state, _, loss = step(params, state, tx.init(params), x)
    _close(loss, FIRST_STEP["loss"])
    cparams, cstate = model.to_canonical(params, state)
    for got, want in ((cparams, FIRST_STEP["params"]), (cstate, FIRST_STEP["state"])):
        assert got.keys() == want.keys()
        for name, value in want.items():
            _close(got[name], value)
    y, after = model.apply(params, state, x, train=False)
    _close(y, FIRST_STEP["eval"])
    _, cafter = model.to_canonical(params, after)  # eval leaves every mean as it was
    assert all(np.array_equal(cafter[name], cstate[name]) for name in cstate)


def test_oracle_first_step_at_depth_2_matches_the_hand_computed_values():
    trajectory = bias_stack_oracle(X[None], CONFIG, SGD)
    np.testing.assert_allclose(trajectory.loss[0], FIRST_STEP["loss"], rtol=1e-12)
    for kind in ("params", "state"):
        for name, value in FIRST_STEP[kind].items():
            np.testing.assert_allclose(getattr(trajectory, kind)[name][1], value, rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_canonical_round_trip_is_bitwise_and_the_values_are_used(impl):
    config = BiasStackConfig(depth=3, features=3)
    model = shared.make(impl, config, "bias-stack")
    rng = np.random.default_rng(0)
    cparams = {f"layers.{i}.bias": rng.standard_normal(3, np.float32) for i in range(3)}
    # Not symmetric: a kernel stored transposed (Equinox's (out, in)) must come back as it was.
    cparams |= {f"layers.{i}.kernel": rng.standard_normal((3, 3), np.float32) for i in range(3)}
    cstate = {f"layers.{i}.mean": rng.standard_normal(3, np.float32) for i in range(3)}
    cparams["layers.1.bias"][2] = -0.0  # a signed zero survives too
    cparams["layers.2.kernel"][0, 1] = -0.0
    params, state = model.from_canonical(cparams, cstate)
    back_params, back_state = model.to_canonical(params, state)
    for back, want in ((back_params, cparams), (back_state, cstate)):
        assert back.keys() == want.keys()
        for name in want:
            got = np.asarray(back[name])
            assert got.dtype == np.float32 and got.tobytes() == want[name].tobytes(), name
    # The native form is really used: eval multiplies by each block's loaded kernel, (in, out),
    # and subtracts its loaded mean + bias, in order (float64 here: a float32 dot's summation
    # order is XLA's own, so the check is close, not bitwise).
    x = rng.standard_normal((4, 3), np.float32)
    y, _ = model.apply(params, state, jnp.asarray(x), train=False)
    expected = x.astype(np.float64)
    for i in range(3):
        z = expected @ cparams[f"layers.{i}.kernel"].astype(np.float64)
        expected = z - (cstate[f"layers.{i}.mean"] + cparams[f"layers.{i}.bias"])
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"depth": 0}, ValueError, "bias-stack: depth must be an int >= 1, got 0"),
        ({"depth": -2}, ValueError, "bias-stack: depth must be an int >= 1, got -2"),
        ({"depth": 2.0}, TypeError, "bias-stack: depth must be an int >= 1, got 2.0"),
        ({"depth": "3"}, TypeError, "bias-stack: depth must be an int >= 1, got '3'"),
        ({"depth": True}, TypeError, "bias-stack: depth must be an int >= 1, got True"),
        ({"features": 0}, ValueError, "bias-stack: features must be an int >= 1, got 0"),
        ({"momentum": 1.0}, ValueError, r"bias-stack: momentum must be a float in \[0, 1\)"),
        ({"momentum": float("nan")}, ValueError, "bias-stack: momentum must be a float"),
        ({"momentum": "0.9"}, TypeError, "bias-stack: momentum must be a float"),
    ],
    ids=[
        "depth0",
        "depth-neg",
        "depth-float",
        "depth-str",
        "depth-bool",
        "features0",
        "momentum1",
        "momentum-nan",
        "momentum-str",
    ],
)
def test_bad_config_says_what_was_expected(kwargs, error, message):
    with pytest.raises(error, match=f"^{message}"):
        BiasStackConfig(**kwargs)


def test_bad_depth_on_the_command_line_exits_2_and_says_why(capsys):
    assert main(["compare", "--model", "bias-stack", "--depth", "0"]) == 2
    assert "bias-stack: depth must be an int >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("impl", IMPLS)
def test_an_input_with_other_features_names_the_implementation(impl):
    model = shared.make(impl, BiasStackConfig(depth=2, features=4), "bias-stack")
    with pytest.raises(ValueError, match=f"^{impl}: x has 3 features but the model's state has 4"):
        model.init(jax.random.key(0), jnp.zeros((8, 3)))


@pytest.mark.parametrize("quick", [False, True])
def test_bench_depth_gives_a_tiny_and_a_large_shape_at_that_depth(quick):
    shapes = bias_stack.SPEC.bench_depth(16, quick, np.random.default_rng(0))
    assert bias_stack.SPEC.bench is None
    tiny, large = shapes
    assert (tiny.label, tiny.size, large.size) == ("L16 B8xD4", "tiny", "large")
    # The large width's label names its batch and features, and every shape is at depth 16.
    _, batch, features = large.batches.shape
    assert large.label == f"L16 B{batch}xD{features}" and features > tiny.batches.shape[2]
    assert all(shape.config.depth == 16 and shape.samples >= 3 for shape in shapes)
    for shape in shapes:
        assert shape.batches.dtype == np.float32 and shape.baseline == ("jax", "native")
        assert shape.config.depth == 16 and shape.config.features == shape.batches.shape[-1]
