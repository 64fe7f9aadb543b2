"""Bad checkpoint inputs: exit 2 with one line naming what is wrong; nothing overwritten."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

from shared.checkpoint import CheckpointError, CheckpointStore, read_trajectories
from shared.cli import main

SAVE = ["--impl", "jax", "--steps", "6", "--optimizer", "momentum"]


def _state_rosetta(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared", *argv], capture_output=True, text=True, timeout=300
    )


def _fingerprint(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A complete checkpoint at step 2 of a 6-step pure-JAX bias adder run."""
    directory = tmp_path / "ckpt"
    assert main(["checkpoint", "save", str(directory), *SAVE, "--until", "2"]) == 0
    return directory


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_missing_folder(tmp_path: Path) -> None:
    done = _state_rosetta(
        "checkpoint", "continue", str(tmp_path / "nope"), "--out", str(tmp_path / "o.npz")
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"state-rosetta: error: checkpoint {tmp_path / 'nope'}: no such folder"
    ]


def test_a_truncated_checkpoint(saved: Path, tmp_path: Path) -> None:
    for data in (saved / "2" / "train").rglob("d/*"):
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    before = _fingerprint(saved)
    done = _state_rosetta("checkpoint", "continue", str(saved), "--out", str(tmp_path / "o.npz"))
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"checkpoint {saved}: step 2: file train/" in line
    assert "is truncated or extended" in line and " saved)" in line
    assert _fingerprint(saved) == before
    assert not (tmp_path / "o.npz").exists()


def test_a_corrupted_checkpoint_of_the_same_size(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flipped bit keeps every size: orbax would read it back without a word."""
    data = max((saved / "2" / "train").rglob("d/*"), key=lambda p: p.stat().st_size)
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0x01
    data.write_bytes(bytes(raw))
    line = _error_line(capsys, ["checkpoint", "continue", str(saved), "--out", str(tmp_path / "o")])
    assert "is corrupted (its SHA-256 differs)" in line and data.name in line


def test_corrupted_metadata(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = saved / "2" / "state-rosetta.sha256.json"
    digest.write_text("{not json")
    line = _error_line(capsys, ["checkpoint", "continue", str(saved), "--out", str(tmp_path / "o")])
    assert "step 2: its state-rosetta.sha256.json cannot be read" in line


def test_a_checkpoint_of_another_framework_is_not_overwritten(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _fingerprint(saved)
    argv = ["checkpoint", "save", str(saved), "--impl", "haiku", "--steps", "6"]
    line = _error_line(capsys, argv)
    assert "holds another run" in line and "'implementation': 'jax'" in line
    assert "nothing was overwritten" in line
    assert _fingerprint(saved) == before


def test_a_checkpoint_of_another_model(saved: Path) -> None:
    with (
        CheckpointStore(saved) as store,
        pytest.raises(CheckpointError, match="model 'bias-adder', expected 'mlp-bn'"),
    ):
        store.restore({}, expect={"model": "mlp-bn"})


def test_a_checkpoint_not_written_by_state_rosetta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "foreign"
    with ocp.CheckpointManager(foreign, item_names=("train", "meta")) as manager:
        manager.save(
            1,
            args=ocp.args.Composite(
                train=ocp.args.StandardSave({"w": jnp.ones(2)}), meta=ocp.args.JsonSave({"a": 1})
            ),
        )
        manager.wait_until_finished()
    line = _error_line(
        capsys, ["checkpoint", "continue", str(foreign), "--out", str(tmp_path / "o")]
    )
    assert "step 1 has no state-rosetta.sha256.json: it was not written by state-rosetta" in line
    before = _fingerprint(foreign)
    line = _error_line(capsys, ["checkpoint", "save", str(foreign), *SAVE, "--until", "2"])
    assert "step 1 exists and is not this run's unfinished save; nothing was overwritten" in line
    assert _fingerprint(foreign) == before


def test_a_folder_with_only_a_killed_save(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ckpt" / "3.orbax-checkpoint-tmp").mkdir(parents=True)
    line = _error_line(
        capsys, ["checkpoint", "continue", str(tmp_path / "ckpt"), "--out", str(tmp_path / "o")]
    )
    assert "no complete checkpoint in it" in line


def test_a_leftover_temporary_folder_does_not_block_the_next_save(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """orbax #394, openpi #566: leftover temporary folders broke later saves."""
    leftover = saved / "3.orbax-checkpoint-tmp"
    (leftover / "train").mkdir(parents=True)
    (leftover / "train" / "half-written").write_bytes(b"\0" * 100)
    assert main(["checkpoint", "save", str(saved), *SAVE, "--until", "4", "--every", "1"]) == 0
    assert "going on from step 2" in capsys.readouterr().out
    assert not leftover.exists()
    with CheckpointStore(saved) as store:
        assert store.steps() == [2, 3, 4]


def test_saving_a_step_twice_is_refused(saved: Path) -> None:
    with CheckpointStore(saved, create=True) as store:
        before = _fingerprint(saved)
        with pytest.raises(CheckpointError, match="step 2 exists; nothing was overwritten"):
            store.save(
                2,
                {"w": jnp.ones(2)},
                {"model": "bias-adder", "implementation": "jax", "loop": "harness"},
            )
    assert _fingerprint(saved) == before


def test_bad_resume_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    line = _error_line(capsys, ["checkpoint", "resume", "--steps", "4", "--at", "4"])
    assert "--at: expected a step between 1 and 3, got 4" in line
    line = _error_line(capsys, ["checkpoint", "resume", "--impls", "nope"])
    assert "unknown implementation 'nope'" in line


def test_continue_names_each_bad_folder_and_goes_on_with_the_rest(
    saved: Path, tmp_path: Path
) -> None:
    """The fresh process of `checkpoint resume` continues many folders: one bad folder is
    reported by name (exit 1), and the others are still continued."""
    out = tmp_path / "o.npz"
    missing = tmp_path / "nope"
    assert main(["checkpoint", "continue", str(saved), str(missing), "--out", str(out)]) == 1
    errors = json.loads((tmp_path / "o.npz.errors.json").read_text())
    assert list(errors) == [str(missing)]
    assert "no such folder" in errors[str(missing)]
    continued = read_trajectories(out)[str(saved)]
    assert continued.steps == 4  # from step 2 to step 6
