"""Convert a framework's native checkpoint into another framework's native layout.

Each conversion is proven the way a porter would: the target trains on from the converted
checkpoint in a fresh process (`checkpoint convert --check`), and its steps are compared
with the source framework's own uninterrupted run within the bound the model declares for
that pair of frameworks. The layout differences are checked on the files themselves, read
back by orbax without a target: the step's dtype, optax's state as a tuple or as NNX's
int-keyed dict, NNX's RNG streams.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.checkpoint import CheckpointError, CheckpointStore, continue_from, convert
from shared.cli import main

STEPS, AT = "6", "3"


def _save(folder: Path, model: str, impl: str, *extra: str) -> Path:
    argv = ["checkpoint", "save", str(folder), "--model", model, "--impl", impl]
    argv += ["--loop", "native", "--optimizer", "adam", "--steps", STEPS, "--until", AT, *extra]
    assert main(argv) == 0
    return folder


def _convert(src: Path, dst: Path, to: str, *extra: str) -> dict:
    out = dst.with_name(dst.name + ".json")
    code = main(
        ["checkpoint", "convert", str(src), str(dst), "--to", to, *extra, "--json", str(out)]
    )
    data = json.loads(out.read_text())
    data["code"] = code
    return data


def _leaves(folder: Path) -> dict[str, np.ndarray]:
    with CheckpointStore(folder) as store:
        return store.leaves()


@pytest.fixture(scope="module")
def linen_bn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Linen's native mlp-bn loop, adam, saved after step 3 of 6: a `TrainState`."""
    return _save(tmp_path_factory.mktemp("linen") / "src", "mlp-bn", "flax_linen")


def test_linen_into_nnx_continues_within_bound(linen_bn: Path, tmp_path: Path) -> None:
    dst = tmp_path / "nnx"
    done = _convert(linen_bn, dst, "flax_nnx", "--check")
    assert done["code"] == 0, done
    assert done["check"]["ok"], done["check"]
    assert done["step_dtype"] == {"from": "int32", "into": "uint32"}
    src, out = _leaves(linen_bn), _leaves(dst)
    # The layouts, on disk: Linen's TrainState against NNX's {model, optimizer}.
    assert {n.split(".")[0] for n in src} == {"step", "params", "opt_state", "batch_stats"}
    assert {n.split(".")[0] for n in out} == {"model", "optimizer"}
    assert src["step"].dtype == np.int32 and out["optimizer.step.value"].dtype == np.uint32
    assert int(out["optimizer.step.value"]) == int(src["step"]) == int(AT)
    # Optax's state: Linen's tuple (index 0: adam's state) is NNX's int-keyed dict.
    np.testing.assert_array_equal(
        out["optimizer.opt_state.0.mu.dense1.kernel.value"], src["opt_state.0.mu.dense1.kernel"]
    )
    np.testing.assert_array_equal(
        out["optimizer.opt_state.0.count.value"], src["opt_state.0.count"]
    )
    np.testing.assert_array_equal(out["model.bn.mean.value"], src["batch_stats.bn.mean"])
    np.testing.assert_array_equal(out["model.dense2.kernel.value"], src["params.dense2.kernel"])
    assert not any(n.startswith("model.") and "rngs" in n for n in out)  # mlp-bn keeps none


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _nested(leaves: dict[str, np.ndarray]) -> dict:
    """Saved leaves by dotted name as the nested dicts orbax writes."""
    out: dict = {}
    for name, value in leaves.items():
        *parents, last = name.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def _tampered(src: Path, folder: Path, leaves: dict[str, np.ndarray]) -> Path:
    """A checkpoint with `src`'s metadata (a Linen native run) holding `leaves` instead."""
    with CheckpointStore(src) as store:
        meta = store.meta()
    keep = {k: meta[k] for k in ("model", "implementation", "loop", "case")}
    with CheckpointStore(folder, create=True) as store:
        store.save(int(AT), _nested(leaves), keep)
    return folder


def test_an_unknown_framework_exits_2(linen_bn: Path, tmp_path: Path, capsys) -> None:
    argv = ["checkpoint", "convert", str(linen_bn), str(tmp_path / "d"), "--to", "torch"]
    line = _error_line(capsys, argv)
    assert "--to torch: unknown framework" in line and "expected one of flax_linen" in line
    assert not (tmp_path / "d").exists()


def test_a_source_of_another_framework_exits_2(linen_bn: Path, tmp_path: Path, capsys) -> None:
    argv = ["checkpoint", "convert", str(linen_bn), str(tmp_path / "d"), "--to", "haiku"]
    line = _error_line(capsys, [*argv, "--from", "flax_nnx"])
    assert line.startswith("state-rosetta: error: --from flax_nnx: checkpoint"), line
    assert "holds flax_linen's native layout, expected Flax NNX's {model, optimizer}" in line


def test_a_layout_that_does_not_match_exits_2(linen_bn: Path, tmp_path: Path, capsys) -> None:
    """NNX's top-level entries under a Linen run's metadata."""
    leaves = {f"model.{k}": v for k, v in _leaves(linen_bn).items()}
    bad = _tampered(linen_bn, tmp_path / "bad", leaves)
    line = _error_line(
        capsys, ["checkpoint", "convert", str(bad), str(tmp_path / "d"), "--to", "flax_nnx"]
    )
    assert "--from flax_linen: checkpoint" in line and "holds model at its top" in line
    assert "expected Flax Linen's TrainState" in line


def test_a_missing_leaf_exits_2(linen_bn: Path, tmp_path: Path, capsys) -> None:
    leaves = _leaves(linen_bn)
    del leaves["opt_state.0.nu.bn.scale"]
    bad = _tampered(linen_bn, tmp_path / "bad", leaves)
    line = _error_line(
        capsys, ["checkpoint", "convert", str(bad), str(tmp_path / "d"), "--to", "flax_nnx"]
    )
    assert "--from flax_linen:" in line and "has no leaf 'opt_state.0.nu.bn.scale'" in line


def test_a_dtype_it_cannot_convert_exits_2(linen_bn: Path, tmp_path: Path, capsys) -> None:
    leaves = _leaves(linen_bn)
    leaves["params.dense2.kernel"] = leaves["params.dense2.kernel"].astype(np.float16)
    bad = _tampered(linen_bn, tmp_path / "bad", leaves)
    line = _error_line(
        capsys, ["checkpoint", "convert", str(bad), str(tmp_path / "d"), "--to", "flax_nnx"]
    )
    assert "--from flax_linen:" in line
    assert "leaf 'params.dense2.kernel' is float16, expected float32" in line


def test_a_failed_conversion_leaves_nothing(linen_bn: Path, tmp_path: Path, monkeypatch) -> None:
    """Broken after orbax wrote every file (reading it back fails): neither the
    destination nor the hidden folder it was written into is left."""

    def broken(*args: object, **kwargs: object) -> None:
        raise CheckpointError("broken on purpose after the save")

    monkeypatch.setattr(CheckpointStore, "restore", broken)  # only the read-back restores
    parent = tmp_path / "out"
    parent.mkdir()
    with pytest.raises(CheckpointError, match="on purpose"):
        convert(linen_bn, parent / "d", to="flax_nnx")
    assert list(parent.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "source", "target"),
    [
        ("mlp-bn", "flax_nnx", "flax_linen"),
        ("mlp-bn", "haiku", "flax_nnx"),
        ("mlp-bn", "haiku", "equinox"),
        ("mlp-bn", "flax_linen", "flax_linen"),
        ("mlp-dropout", "flax_linen", "flax_nnx"),
        ("mlp-dropout", "flax_nnx", "flax_linen"),
        ("mlp-dropout", "haiku", "equinox"),
    ],
)
def test_conversions_continue_within_bound(
    tmp_path: Path, model: str, source: str, target: str
) -> None:
    """mlp-bn: within the model's cross-framework adam bound (5e-6). mlp-dropout with its
    default aligned keys: every framework draws the harness's masks and runs the same ops,
    so its declared bound is bitwise."""
    src = _save(tmp_path / "src", model, source)
    done = _convert(src, tmp_path / "dst", target, "--check")
    assert done["code"] == 0, done
    assert done["check"]["ok"], done["check"]
    if model == "mlp-dropout" or source == target:
        assert done["check"]["bitwise"], done["check"]
    assert done["not_carried"] == done["own"] == []
    # The converted values are exact: both checkpoints restored, under canonical names.
    _, _, a = continue_from(src, int(AT) + 1)
    _, _, b = continue_from(tmp_path / "dst", int(AT) + 1)
    for mine, theirs in ((b.params, a.params), (b.state, a.state)):
        assert sorted(mine) == sorted(theirs)
        for name, values in mine.items():
            np.testing.assert_array_equal(values[0], theirs[name][0], err_msg=name)


@pytest.mark.slow
def test_haiku_ema_into_nnx_is_the_debiased_average(tmp_path: Path) -> None:
    """Haiku's BatchNorm keeps (1, C) EMAs with hidden, average and counter; NNX's running
    mean is (C,): the converted mean is the EMA's average (what Haiku normalises with at
    eval), reshaped."""
    src = _save(tmp_path / "src", "mlp-bn", "haiku")
    _convert(src, tmp_path / "dst", "flax_nnx")
    a, b = _leaves(src), _leaves(tmp_path / "dst")
    average = a["state.mlp_bn/bn/~/mean_ema.average"]
    assert average.shape == (1, 32) and b["model.bn.mean.value"].shape == (32,)
    np.testing.assert_array_equal(b["model.bn.mean.value"], average.reshape(32))
    assert "optimizer.step.value" in b and "steps" not in a  # Haiku counts no step


@pytest.mark.slow
def test_nnx_rngs_are_reported_not_carried(tmp_path: Path) -> None:
    """Native keys: NNX's dropout stream (an `nnx.Rngs` key and count, in the model's state)
    has no place in Linen's TrainState, whose dropout keys come from its own root key and
    step; the conversion says so, and Linen goes on with its own stream (the continuation
    differs from NNX's, as the model declares for native keys across frameworks)."""
    src = _save(tmp_path / "src", "mlp-dropout", "flax_nnx", "--native")
    done = _convert(src, tmp_path / "dst", "flax_linen", "--check")
    assert done["not_carried"] == ["dropout.rngs.count", "dropout.rngs.key"]
    assert done["code"] == 0 and done["check"]["ok"] and not done["check"]["bitwise"]
    assert int(_leaves(tmp_path / "dst")["step"]) == int(AT)


@pytest.mark.slow
def test_sgd_whose_optax_state_is_empty_converts(tmp_path: Path) -> None:
    """Plain sgd keeps only `EmptyState()`s: NNX's optimizer then saves a step and no
    `opt_state` leaf at all, and Haiku's opt_state has no leaf either."""
    src = _save(tmp_path / "src", "mlp-bn", "flax_nnx", "--optimizer", "sgd")
    assert not any(n.startswith("optimizer.opt_state") for n in _leaves(src))
    done = _convert(src, tmp_path / "dst", "haiku", "--check")
    assert done["code"] == 0 and done["check"]["ok"], done
    assert not any(n.startswith("opt_state") for n in _leaves(tmp_path / "dst"))


def test_a_step_counter_that_disagrees_exits_2(linen_bn: Path, tmp_path: Path, capsys) -> None:
    leaves = _leaves(linen_bn)
    leaves["step"] = np.int32(5)  # saved at step 3
    bad = _tampered(linen_bn, tmp_path / "bad", leaves)
    line = _error_line(
        capsys, ["checkpoint", "convert", str(bad), str(tmp_path / "d"), "--to", "haiku"]
    )
    assert "--from flax_linen:" in line and "its step counter says 5, expected 3" in line


@pytest.mark.slow
def test_an_integer_step_converts_only_where_its_value_fits(tmp_path: Path, capsys) -> None:
    """NNX's uint32 step saved as int64 (as code of one's own might save it): cast, since
    3 fits; -1 does not fit a uint32 and is refused, naming the leaf."""
    src = _save(tmp_path / "src", "mlp-bn", "flax_nnx")
    leaves = _leaves(src)
    with CheckpointStore(src) as store:
        meta = {k: store.meta()[k] for k in ("model", "implementation", "loop", "case")}
    for value, folder in ((3, "fits"), (-1, "negative")):
        leaves["optimizer.step.value"] = np.int64(value)
        with CheckpointStore(tmp_path / folder, create=True) as store:
            store.save(int(AT), _nested(leaves), meta)
    done = _convert(tmp_path / "fits", tmp_path / "fits-linen", "flax_linen")
    assert done["code"] == 0 and done["step_dtype"] == {"from": "uint32", "into": "int32"}
    argv = ["checkpoint", "convert", str(tmp_path / "negative"), str(tmp_path / "d")]
    line = _error_line(capsys, [*argv, "--to", "flax_linen"])
    assert "--from flax_nnx:" in line and "leaf 'optimizer.step.value' is int64" in line
    assert "expected uint32, which cannot hold it" in line
