"""`state-rosetta compare`: the Flax page's defaults, the JSON contract, data files, outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

import shared
from shared.cli import main
from shared.models import bias_adder

IMPLS = shared.implementations("bias-adder")


def test_default_run_agrees_and_follows_the_json_contract(default_run):
    assert default_run.code == 0
    run = default_run.json
    assert run["model"] == "bias-adder"
    assert set(run["versions"]) >= {"jax", "flax", "haiku", "equinox", "optax"}
    config = run["config"]
    assert (config["steps"], config["batch"], config["features"]) == (10, 8, 4)
    assert (config["momentum"], config["optimizer"], config["lr"]) == (0.9, "sgd", 0.02)
    assert config["seed_faithful"] is False and config["keepdims"] is False  # old and new name
    expected = {f"{i}/{loop}" for i in IMPLS for loop in shared.LOOPS}
    assert set(run["trajectories"]) == expected | {"oracle/float64"}
    for traj in run["trajectories"].values():
        assert len(traj["loss"]) == 10
        assert len(traj["params"]["bias"]) == 11 and len(traj["state"]["mean"]) == 11
        assert np.shape(traj["state"]["mean"][10]) == (4,)
    comparison = run["comparison"]
    assert comparison["reference"] == "jax/harness" and comparison["agree"] is True
    assert comparison["counts"] == {
        "reference": 1,
        "agree": 18,
        "diverge": 0,
        "expected": 0,
        "failed": 0,
    }
    assert {p["a"] for p in comparison["pairs"]} == set(run["trajectories"]) - {"jax/harness"}
    for pair in comparison["pairs"]:
        assert set(pair) >= {"a", "b", "bitwise", "max_abs", "max_ulp", "first_divergence"}
        assert pair["first_divergence"] is None
    assert "sidecar" not in run  # a small run is plain JSON


def test_json_floats_round_trip_to_the_same_float32_bits(default_run):
    # The Flax page's run, redone in the library: the JSON's numbers are the same float32s.
    config = bias_adder.BiasAdderConfig(4)
    xs = bias_adder.as_batches("t", bias_adder.fixed_batch(8, 4, 0), config, 10)
    model = shared.make("haiku", config)
    params, state = model.init(jax.random.key(0), xs[0])
    traj = shared.run_native(model, params, state, shared.OptimizerConfig().make(), xs)
    raw = default_run.json["trajectories"]["haiku/native"]
    from_json = shared.Trajectory(
        loss=[np.asarray(v, np.float32) for v in raw["loss"]],
        params={k: [np.asarray(v, np.float32) for v in vs] for k, vs in raw["params"].items()},
        state={k: [np.asarray(v, np.float32) for v in vs] for k, vs in raw["state"].items()},
    )
    assert shared.compare(from_json, traj).bitwise
    assert shared.compare(default_run.run.trajectories["haiku/native"], traj).bitwise


def test_json_floats_are_short_float32_text(default_run):
    text = json.dumps(default_run.json["trajectories"])
    numbers = re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", text)
    assert len(numbers) > 500
    # Any float32 reads back exactly from 9 significant digits; a float64 repr of a float32
    # (0.019999999552965164) has 17. None may remain.
    digits = max(
        len(n.split("e")[0].replace("-", "").replace(".", "").lstrip("0")) for n in numbers
    )
    assert digits <= 9, digits


def test_plot_is_a_png(tmp_path):
    path = tmp_path / "run.png"
    assert main(["compare", "--impls", "jax,haiku", "--loop", "harness", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        assert (
            main(
                [
                    "compare",
                    "--impls",
                    "jax",
                    "--loop",
                    "harness",
                    "--json",
                    str(tmp_path / "run.json"),
                    "--plot",
                    str(tmp_path / "run.png"),
                ]
            )
            == 0
        )
    finally:
        os.umask(old)
    for name in ("run.json", "run.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name  # 0666 less 027
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.parametrize("rank", [2, 3])
def test_user_data_file(tmp_path, rank):
    rng = np.random.default_rng(7)
    shape = (6, 5, 3) if rank == 3 else (5, 3)
    np.save(tmp_path / "x.npy", rng.standard_normal(shape))  # float64: converted to float32
    out = tmp_path / "run.json"
    argv = ["compare", "--data", str(tmp_path / "x.npy"), "--optimizer", "adam"]
    assert main([*argv, "--impls", "jax,equinox", "--json", str(out)]) == 0
    run = json.loads(out.read_text())
    assert run["config"]["steps"] == (6 if rank == 3 else 10)  # the file's length, or the page's
    assert (run["config"]["batch"], run["config"]["features"]) == (5, 3)
    assert run["config"]["data_dtype"] == "float64"
    assert set(run["trajectories"]) == {
        f"{impl}/{loop}" for impl in ("jax", "equinox") for loop in shared.LOOPS
    } | {"oracle/float64"}


def test_keepdims_run_reports_failures_whole_and_counts_them(cli_run, capsys):
    run = cli_run("compare", "--seed-faithful", "--loop", "harness,scan")
    assert run.code == 1
    raw = run.json
    assert set(raw["errors"]) == {
        "flax_nnx/harness",
        "equinox/harness",
        "keras/harness",
        *(f"{impl}/scan" for impl in IMPLS),
    }
    assert raw["config"]["keepdims"] is True and raw["config"]["seed_faithful"] is True
    assert raw["errors"]["equinox/harness"].startswith("ValueError: ")
    assert np.shape(raw["trajectories"]["flax_linen/harness"]["state"]["mean"][1]) == (1, 4)
    assert all(p["first_divergence"] is None for p in raw["comparison"]["pairs"])
    counts = raw["comparison"]["counts"]
    # 12 trajectories ran: 3 trained and agree with the reference, 9 failed; none diverged.
    assert counts == {"reference": 1, "agree": 3, "diverge": 0, "expected": 0, "failed": 9}
    out = run.output
    assert "FAILED" in out
    assert "DISAGREEMENT: 3 agree with jax/harness, 0 diverge, 9 failed (13 trajectories" in out
    # The scan's TypeError is shown whole, not cut at its first line.
    whole = raw["errors_full"]["jax/scan"]
    assert whole.count("\n") >= 1 and whole.splitlines()[-1].strip() in out


def test_python_dash_m_shared_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "shared", "compare", "--impls", "jax", "--loop", "harness"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "all trajectories agree: 1 agree with jax/harness" in proc.stdout


def test_diff_pairs_two_implementations_even_when_both_runs_hold_the_oracle(tmp_path, capsys):
    for impl in ("jax", "haiku"):
        argv = ["compare", "--impls", impl, "--loop", "harness", "--json", str(tmp_path / impl)]
        assert main(argv) == 0
    # Haiku and pure JAX train bitwise alike; the oracle is paired with itself.
    assert main(["diff", str(tmp_path / "haiku"), str(tmp_path / "jax")]) == 0
    out = capsys.readouterr().out
    assert "the runs agree: 2 trajectories agree, 0 diverge" in out
    assert "haiku/harness against jax/harness" in out and "only in" not in out
