"""(h) Bad input: a clear ValueError or TypeError in the library, exit 2 and one line on the CLI."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import IMPLS

import shared
from shared.cli import main
from shared.models.bias_adder import BiasAdderConfig, as_batches, bias_adder_loss

CONFIG = BiasAdderConfig(4)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (jnp.zeros((4,)), ValueError, r"x must have rank 2, \(batch, features\), got shape \(4,\)"),
        (jnp.zeros((2, 3, 4)), ValueError, "x must have rank 2"),
        (jnp.zeros((8, 3)), ValueError, "x has 3 features but the model's state has 4"),
        (jnp.zeros((8, 4), jnp.int32), TypeError, "x must have a floating dtype, got int32"),
        ([[1.0] * 4], TypeError, "x must be an array, got list"),
    ],
    ids=["rank1", "rank3", "features", "int", "list"],
)
def test_bad_x_names_the_framework_and_the_expectation(impl, x, error, message):
    model = shared.make(impl, CONFIG)
    params, state = model.init(jax.random.key(0), jnp.zeros((8, 4)))
    before = jax.tree.map(np.array, model.to_canonical(params, state))
    with pytest.raises(error, match=f"^{impl}: {message}"):
        model.apply(params, state, x, train=True)
    with pytest.raises(error, match=f"^{impl}: {message}"):
        model.init(jax.random.key(0), x)
    after = jax.tree.map(np.array, model.to_canonical(params, state))
    assert jax.tree.all(jax.tree.map(np.array_equal, before, after))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("loop", ["harness", "scan", "native"])
def test_non_finite_batches_raise_before_training(loop, bad):
    model = shared.make("flax_nnx", CONFIG)
    xs = np.zeros((3, 8, 4), np.float32)
    xs[2, 1, 3] = bad
    params, state = model.init(jax.random.key(0), xs[0])
    with pytest.raises(ValueError, match=r"flax_nnx: batches must be finite.*index \(2, 1, 3\)"):
        shared.run_loop(
            loop, model, params, state, shared.OptimizerConfig().make(), xs, bias_adder_loss
        )


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: BiasAdderConfig(4, momentum=1.0),
            ValueError,
            r"momentum must be in \[0, 1\)",
        ),
        (lambda: BiasAdderConfig(4, momentum=-0.1), ValueError, "momentum must be in"),
        (lambda: BiasAdderConfig(4, momentum=float("nan")), ValueError, "momentum must"),
        (lambda: BiasAdderConfig(0), ValueError, "features must be >= 1"),
        (
            lambda: as_batches("data", np.zeros((8, 4)), CONFIG, 0),
            ValueError,
            "steps must be >= 1, got 0",
        ),
        (
            lambda: as_batches("data", np.zeros((3, 8, 4)), CONFIG, 5),
            ValueError,
            "steps=5 but data holds only 3 batches",
        ),
        (
            lambda: as_batches("data", np.zeros((8, 4), np.int64), CONFIG, 5),
            TypeError,
            "data must have a floating dtype, got int64",
        ),
        (
            lambda: as_batches("data", np.zeros((1, 3, 8, 4)), CONFIG, 5),
            ValueError,
            r"data must have rank 2.*or rank 3.*got shape \(1, 3, 8, 4\)",
        ),
        (
            lambda: as_batches("data", np.zeros((8, 5)), CONFIG, 5),
            ValueError,
            "data has 5 features but the model's state has 4",
        ),
        (
            lambda: shared.make("torch", CONFIG),
            ValueError,
            "unknown implementation 'torch'; expected one of flax_linen",
        ),
        (
            lambda: shared.OptimizerConfig("rmsprop"),
            ValueError,
            "unknown name 'rmsprop'; expected one of sgd, momentum, adam, adamw",
        ),
        (
            lambda: shared.OptimizerConfig("sgd", learning_rate=-1.0),
            ValueError,
            "learning_rate must be finite and > 0",
        ),
        (lambda: shared.load_factory("no_such_module_xyz:make"), ValueError, "cannot import"),
    ],
    ids=[
        "momentum1",
        "momentum-neg",
        "momentum-nan",
        "features0",
        "steps0",
        "steps-long",
        "int-data",
        "rank4-data",
        "data-features",
        "impl",
        "optimizer",
        "lr",
        "plugin",
    ],
)
def test_library_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def _cli_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("state-rosetta: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--momentum", "1.0"], "momentum must be in [0, 1)"),
        (["--momentum", "-0.5"], "momentum must be in [0, 1)"),
        (["--steps", "0"], "steps must be >= 1"),
        (["--impls", "jax,torch"], "unknown implementation 'torch'"),
        (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["--loop", "eager"], "unknown loop 'eager'"),
        (["--features", "0"], "features must be >= 1, got 0"),
        (["--batch", "0"], "batch must be an int >= 1, got 0"),
        (["--impl", "no_such_module_xyz:make"], "cannot import 'no_such_module_xyz'"),
        (["--lr", "nan"], "learning_rate must be finite"),
        (
            ["--bogus"],
            "unrecognized arguments of model bias-adder: --bogus "
            "(its own options: --features, --momentum, --keepdims)",
        ),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    assert message in _cli_error(capsys, ["compare", *argv])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4,), np.float32), "data must have rank 2, (batch, features), or rank 3"),
        (np.zeros((2, 3, 4, 5), np.float32), "got shape (2, 3, 4, 5)"),
        (np.zeros((8, 4), np.int32), "data must have a floating dtype, got int32"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "data must be finite, found 1 non-finite"),
        (np.array([[np.inf, 0.0]]), "data must be finite"),
    ],
    ids=["rank1", "rank4", "int", "nan", "inf"],
)
def test_cli_bad_data_exit_2(tmp_path, capsys, array, message):
    path = tmp_path / "x.npy"
    np.save(path, array)
    assert message in _cli_error(capsys, ["compare", "--data", str(path)])


def test_cli_data_and_shape_options_conflict(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((8, 4), np.float32))
    line = _cli_error(capsys, ["compare", "--data", str(path), "--features", "4"])
    assert "--features comes from --data" in line
    line = _cli_error(capsys, ["compare", "--data", str(path), "--batch", "8"])
    assert "--batch comes from --data" in line
    assert "cannot read" in _cli_error(capsys, ["compare", "--data", str(tmp_path / "no.npy")])
    np.save(tmp_path / "three.npy", np.zeros((3, 8, 4), np.float32))
    line = _cli_error(capsys, ["compare", "--data", str(tmp_path / "three.npy"), "--steps", "4"])
    assert "steps=4 but data holds only 3 batches" in line
