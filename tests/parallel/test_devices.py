"""`compare --devices N`: data-parallel training against one device, three ways.

The runs use 8 forced CPU devices; `state-rosetta` starts a child process for them (this
pytest process already runs JAX on one device). Each bound is the model's stated one.
"""

from __future__ import annotations

import numpy as np
import pytest

import shared
from shared.models import bias_adder, mlp_bn, mlp_dropout

DEVICES = "8"


# The fast tier runs shard_map (each framework's own cross-device argument); plain jit over a
# sharded batch is the slow tier's (its numbers are the same kind: the replicas' sums).
@pytest.mark.parametrize("mode", ["shard_map", pytest.param("jit", marks=pytest.mark.slow)])
def test_bias_adder_on_8_devices_agrees_with_one_in_every_framework_and_loop(cli_run, mode):
    run = cli_run("compare", "--devices", DEVICES, "--parallel", mode, "--batch", "16")
    assert run.code == 0, run.output[-3000:]
    raw = run.json
    assert raw["config"]["devices"] == 8 and raw["config"]["parallel"] == mode
    assert raw["comparison"]["reference"] == "jax/1-device"
    loops = ["harness", "native", "scan"] if mode == "jit" else ["harness", "scan"]
    impls = shared.implementations("bias-adder")
    assert set(raw["trajectories"]) == {
        "jax/1-device",
        "oracle/float64",
        *(f"{i}/{loop}" for i in impls for loop in loops),
    }
    for pair in raw["comparison"]["pairs"]:
        if pair["a"] != "oracle/float64":
            assert pair["tolerance"]["reason"] == bias_adder.DEVICES.reason, pair
            assert not pair["bitwise"]  # the replicas' sums combine in another order


def _stacked_data(tmp_path):
    """(steps, 16, 3): replicas 0-3 (2 examples each) see one batch, replicas 4-7 another."""
    rng = np.random.default_rng(5)
    steps = []
    for _ in range(4):
        a, b = rng.standard_normal((2, 2, 3)).astype(np.float32)
        steps.append(np.concatenate([np.tile(a, (4, 1)), np.tile(b + 3, (4, 1))]))
    path = tmp_path / "halves.npy"
    np.save(path, np.stack(steps))
    return path


def test_unsynced_reports_the_first_step_and_the_replicas_that_part(cli_run, tmp_path):
    data = _stacked_data(tmp_path)
    run = cli_run(
        "compare",
        "--devices",
        DEVICES,
        "--parallel",
        "unsynced",
        "--data",
        str(data),
        "--impls",
        "jax,haiku",
        "--loop",
        "harness",
    )
    assert run.code == 1, run.output[-3000:]
    replicas = {r["trajectory"]: r for r in run.json["comparison"]["replicas"]}
    for key in ("jax/harness", "haiku/harness"):
        # Replicas 0-3 see the same examples and keep the same mean; 4-7 another one; all
        # of them part from the one-device mean (that of all 16 examples) at step 1.
        assert replicas[key]["step"] == 1 and replicas[key]["leaf"] == "state.mean"
        assert replicas[key]["replicas"] == [4, 5, 6, 7]
        assert replicas[key]["off_reference"] == [1] * 8
    assert "replicas 4, 5, 6, 7 hold other state than replica 0 from step 1" in run.output
    assert "DIVERGES" in run.output


def test_a_batch_that_does_not_divide_is_refused_before_training(cli_run):
    run = cli_run("compare", "--devices", "3", "--batch", "8")
    assert run.code == 2
    assert "the global batch of 8 examples does not divide across 3 devices" in run.output


@pytest.mark.slow  # 100 mlp-bn steps on 8 devices, per mode; the bias adder's is fast
@pytest.mark.parametrize("mode", ["shard_map", "jit"])
def test_mlp_bn_on_8_devices_within_the_stated_bound(cli_run, mode):
    # 100 steps: past step 93, where a relu flips in some frameworks (the bound's reason).
    # The harness loop: the scan and native loops' data-parallel paths are the bias adder's.
    run = cli_run(
        "compare",
        "--model",
        "mlp-bn",
        "--devices",
        DEVICES,
        "--parallel",
        mode,
        "--loop",
        "harness",
        "--steps",
        "100",
    )
    raw = run.json
    if mode == "shard_map":  # Keras's BatchNormalization cannot synchronise on JAX
        assert set(raw["errors"]) == {"keras/harness"}
        assert (
            "synchronized=True) is only supported with the TensorFlow backend"
            in (raw["errors"]["keras/harness"])
        )
        assert run.code == 1
    else:
        assert run.code == 0, run.output[-3000:]
    for pair in raw["comparison"]["pairs"]:
        assert pair["first_divergence"] is None, pair
        assert pair["tolerance"]["atol"] == mlp_bn.DEVICES.atol
    assert raw["comparison"]["eval"]["atol_by_trajectory"]["flax_linen/harness"] == (
        mlp_bn.DEVICES_EVAL.atol
    )


@pytest.mark.slow  # two 8-device mlp-dropout runs
def test_mlp_dropout_masks_partition_under_jit_but_not_per_replica(cli_run):
    jit = cli_run(
        "compare",
        "--model",
        "mlp-dropout",
        "--devices",
        DEVICES,
        "--parallel",
        "jit",
        "--steps",
        "20",
        "--impls",
        "flax_linen,keras",
        "--loop",
        "harness,native",  # the frameworks' own steps too
    )
    assert jit.code == 0, jit.output[-3000:]
    assert all(p["first_divergence"] is None for p in jit.json["comparison"]["pairs"])
    mapped = cli_run(
        "compare",
        "--model",
        "mlp-dropout",
        "--devices",
        DEVICES,
        "--parallel",
        "shard_map",
        "--steps",
        "20",
        "--impls",
        "flax_linen,keras",
        "--loop",
        "harness",
    )
    assert mapped.code == 0, mapped.output[-3000:]
    for pair in mapped.json["comparison"]["pairs"]:
        assert pair["expected"] and pair["first_divergence"]["step"] == 1, pair
        assert pair["tolerance"]["reason"] == mlp_dropout.DEVICES_SHARD_MAP.reason
