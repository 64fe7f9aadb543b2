"""The `state-rosetta compare` command: the seed's defaults, the JSON contract, data files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import shared
from shared.cli import main


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["compare", "--json", str(out / "run.json"), "--plot", str(out / "run.png")])
    return code, json.loads((out / "run.json").read_text()), out


def test_default_run_agrees_and_follows_the_json_contract(default_run):
    code, run, _ = default_run
    assert code == 0
    assert run["model"] == "bias-adder"
    assert set(run["versions"]) >= {"jax", "flax", "haiku", "equinox", "optax"}
    config = run["config"]
    assert (config["steps"], config["batch"], config["features"]) == (10, 8, 4)
    assert (config["momentum"], config["optimizer"], config["lr"]) == (0.9, "sgd", 0.02)
    expected = {f"{i}/{loop}" for i in shared.IMPLEMENTATIONS for loop in shared.LOOPS}
    assert set(run["trajectories"]) == expected | {"oracle/float64"}
    for traj in run["trajectories"].values():
        assert len(traj["loss"]) == 10
        assert len(traj["params"]["bias"]) == 11 and len(traj["state"]["mean"]) == 11
        assert np.shape(traj["state"]["mean"][10]) == (4,)
    comparison = run["comparison"]
    assert comparison["reference"] == "jax/harness" and comparison["agree"] is True
    assert {p["a"] for p in comparison["pairs"]} == set(run["trajectories"]) - {"jax/harness"}
    for pair in comparison["pairs"]:
        assert set(pair) >= {"a", "b", "bitwise", "max_abs", "max_ulp", "first_divergence"}
        assert pair["first_divergence"] is None


def test_json_floats_round_trip_to_the_same_float32_bits(default_run):
    _, run, _ = default_run
    # The seed's run, redone in the library: the JSON's numbers are the same float32 values.
    config = shared.BiasAdderConfig(4)
    xs = shared.as_batches("t", shared.seed_batch(8, 4, 0), config, 10)
    model = shared.make("haiku", config)
    import jax

    params, state = model.init(jax.random.key(0), xs[0])
    traj = shared.run_native(model, params, state, shared.OptimizerConfig().make(), xs)
    from_json = shared.Trajectory.from_json(run["trajectories"]["haiku/native"])
    assert shared.compare(from_json, traj).bitwise


def test_plot_is_a_png(default_run):
    _, _, out = default_run
    assert (out / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("rank", [2, 3])
def test_user_data_file(tmp_path, rank):
    rng = np.random.default_rng(7)
    shape = (6, 5, 3) if rank == 3 else (5, 3)
    np.save(tmp_path / "x.npy", rng.standard_normal(shape))  # float64: converted to float32
    out = tmp_path / "run.json"
    assert (
        main(
            [
                "compare",
                "--data",
                str(tmp_path / "x.npy"),
                "--optimizer",
                "adam",
                "--impls",
                "jax,equinox",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    run = json.loads(out.read_text())
    assert run["config"]["steps"] == (6 if rank == 3 else 10)  # the file's length, or the seed's
    assert (run["config"]["batch"], run["config"]["features"]) == (5, 3)
    assert run["config"]["data_dtype"] == "float64"
    assert set(run["trajectories"]) == {
        "jax/harness",
        "jax/native",
        "jax/scan",
        "equinox/harness",
        "equinox/native",
        "equinox/scan",
        "oracle/float64",
    }


def test_seed_faithful_run_reports_failures_and_exits_1(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert main(["compare", "--seed-faithful", "--loop", "harness", "--json", str(out)]) == 1
    run = json.loads(out.read_text())
    assert set(run["errors"]) == {"flax_nnx/harness", "equinox/harness"}
    assert run["errors"]["equinox/harness"].startswith("ValueError: ")
    assert np.shape(run["trajectories"]["flax_linen/harness"]["state"]["mean"][1]) == (1, 4)
    assert all(p["first_divergence"] is None for p in run["comparison"]["pairs"])
    assert "FAILED" in capsys.readouterr().out


def test_python_dash_m_shared_runs_the_cli():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared",
            "compare",
            "--impls",
            "jax",
            "--loop",
            "harness",
            "--steps",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "all trajectories agree" in proc.stdout
