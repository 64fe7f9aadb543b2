"""mlp-bn bad input: errors name the framework (or option), the argument, the expectation."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import MLP_BN_IMPLS

import shared
from shared.cli import main
from shared.models import mlp_bn

FRAMEWORKS = MLP_BN_IMPLS
CONFIG = mlp_bn.MlpBnConfig()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_wrong_feature_count(framework):
    impl = shared.make(framework, CONFIG, "mlp-bn")
    params, state = impl.from_canonical(*mlp_bn.canonical_init(CONFIG))
    x = np.zeros((5, 63), np.float32)
    expected = rf"{framework}: x must be shaped \(batch, 64\) \(64 features\), got shape \(5, 63\)"
    with pytest.raises(ValueError, match=expected):
        impl.apply(params, state, x, train=True)
    with pytest.raises(ValueError, match=expected):
        impl.init(None, x)
    with pytest.raises(TypeError, match=f"{framework}: x must have a floating dtype"):
        impl.apply(params, state, np.zeros((5, 64), np.int32), train=False)


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (
            np.array([0, 9, 10]),
            ValueError,
            r"labels must lie in \[0, 10\), found 10 at index \(2,\)",
        ),
        (
            np.array([[1, -1]]),
            ValueError,
            r"labels must lie in \[0, 10\), found -1 at index \(0, 1\)",
        ),
        (np.array([0.0, 1.0]), TypeError, "labels must have an integer dtype, got float64"),
    ],
)
def test_labels_out_of_range(labels, error, match):
    with pytest.raises(error, match=f"data: {match}"):
        mlp_bn.check_labels("data", labels, CONFIG)
    x = np.zeros((labels.size, 64), np.float32)
    with pytest.raises(error, match="data: labels must"):  # flattened: another index
        mlp_bn.minibatches(x, labels.reshape(-1), 1, 2, seed=0)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p, s: p.pop("bn.scale"), r"canonical params entry 'bn.scale' is missing"),
        (lambda p, s: s.pop("bn.var"), r"canonical state entry 'bn.var' is missing"),
        (
            lambda p, s: p.update({"dense1.kernel": np.zeros((32, 64), np.float32)}),
            r"canonical params entry 'dense1.kernel' has shape \(32, 64\); expected \(64, 32\)",
        ),
        (
            lambda p, s: s.update({"bn.mean": np.zeros((1, 32), np.float32)}),
            r"canonical state entry 'bn.mean' has shape \(1, 32\); expected \(32,\)",
        ),
        (
            lambda p, s: p.update({"bn.gamma": np.ones(32, np.float32)}),
            r"unexpected canonical params entry 'bn.gamma'",
        ),
    ],
    ids=["missing-param", "missing-state", "misshaped-kernel", "misshaped-mean", "extra"],
)
def test_canonical_weights_with_a_bad_entry(framework, edit, match):
    impl = shared.make(framework, CONFIG, "mlp-bn")
    params, state = mlp_bn.canonical_init(CONFIG)
    edit(params, state)
    with pytest.raises(ValueError, match=f"{framework}: {match}"):
        impl.from_canonical(params, state)


def test_dropped_bias_is_an_unexpected_entry():
    config = mlp_bn.MlpBnConfig(dense1_bias=False)
    params, state = mlp_bn.canonical_init(CONFIG)  # still holds dense1.bias
    with pytest.raises(ValueError, match=r"haiku: unexpected canonical params entry 'dense1.bias'"):
        shared.make("haiku", config, "mlp-bn").from_canonical(params, state)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden": 0}, "mlp-bn: hidden must be an int >= 1, got 0"),
        ({"momentum": 1.0}, r"mlp-bn: momentum must be in \[0, 1\), got 1.0"),
        ({"epsilon": 0.0}, "mlp-bn: epsilon must be > 0, got 0.0"),
        ({"native_defaults": ("variance",)}, "unknown native_defaults entry 'variance'"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mlp_bn.MlpBnConfig(**kwargs)


OWN = r" \(its own options: --hidden, --momentum, --aligned, --defaults\)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # A bias adder option given to mlp-bn: the model's own options are listed.
        (
            ["--model", "mlp-bn", "--features", "63"],
            r"unrecognized arguments of model mlp-bn: --features 63" + OWN,
        ),
        (["--model", "mlp-bn", "--impls", "jax"], "unknown implementation 'jax'"),
        # --defaults is an mlp-bn mode; the default model (the bias adder) has no such option.
        (["--defaults"], r"unrecognized arguments of model bias-adder: --defaults"),
        (["--model", "mlp-bn", "--aligned", "--defaults"], "not allowed with argument"),
        (["--model", "mlp-bn", "--batch", "5000"], r"batch must be an int in \[1, 1347\]"),
        (
            ["--model", "mlp-bn", "--seed-faithful"],
            r"unrecognized arguments of model mlp-bn: --seed-faithful" + OWN,
        ),
        (["--model", "resnet"], "--model: unknown model 'resnet'"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 1


def test_cli_user_data_is_a_usage_error_for_mlp_bn(tmp_path, capsys):
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((8, 64), np.float32))
    assert main(["compare", "--model", "mlp-bn", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "--data: model mlp-bn takes no user data (it brings its own)" in err, err
    assert err.count("\n") == 1
