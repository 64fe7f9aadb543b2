"""Saved runs: exact float32 text, the array sidecar, atomic writes, and the loader."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import shared


def _trajectory(rng: np.random.Generator, steps: int = 3) -> shared.Trajectory:
    t = shared.Trajectory()
    special = np.array([np.float32(0.1), np.finfo(np.float32).smallest_subnormal, -0.0, 3e38])
    t.record_initial({"w": special.astype(np.float32)}, {"m": np.zeros(2, np.float32)})
    for _ in range(steps):
        t.record_step(
            rng.standard_normal((), np.float32),
            {"w": rng.standard_normal(4, np.float32)},
            {"m": rng.standard_normal(2, np.float32) * np.float32(1e-30)},
        )
    return t


@pytest.mark.parametrize("inline_limit", [10**6, 0])
def test_a_saved_run_reads_back_bit_for_bit(tmp_path, inline_limit):
    rng = np.random.default_rng(0)
    trajectories = {"a/harness": _trajectory(rng), "b/harness": _trajectory(rng)}
    run = {
        "model": "toy",
        "config": {"lr": 0.1},
        "trajectories": {k: t.to_json() for k, t in trajectories.items()},
    }
    written = shared.save_run(run, tmp_path / "run.json", trajectories, inline_limit=inline_limit)
    assert len(written) == (1 if inline_limit else 2)
    loaded = shared.load_run(tmp_path / "run.json")
    for key, t in trajectories.items():
        back = loaded.trajectories[key]
        for group in ("params", "state"):
            for name, values in getattr(t, group).items():
                for a, b in zip(values, getattr(back, group)[name], strict=True):
                    assert a.dtype == b.dtype == np.float32
                    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))  # -0.0 too
        assert np.array_equal(np.asarray(t.loss), np.asarray(back.loss))
    raw = json.loads((tmp_path / "run.json").read_text())
    if inline_limit:  # plain JSON, the values readable with json.load
        assert raw["trajectories"]["a/harness"]["params"]["w"][0][0] == 0.1
    else:
        assert raw["sidecar"] == "run.json.arrays.npz"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    path.write_text("old")

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        shared.write_atomic(path, b"new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_load_run_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="cannot read a run's JSON"):
        shared.load_run(tmp_path / "absent.json")
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a state-rosetta run"):
        shared.load_run(tmp_path / "other.json")
    (tmp_path / "lost.json").write_text(
        '{"model": "m", "config": {}, "trajectories": {}, "sidecar": "gone.npz"}'
    )
    with pytest.raises(ValueError, match="cannot read its sidecar"):
        shared.load_run(tmp_path / "lost.json")
