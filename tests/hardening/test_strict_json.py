"""A run that blew up (inf, NaN) is written as strict JSON and read back exactly (issue 26)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import shared
from shared.cli import main


def _strict(text: str) -> object:
    """`json.loads` as a strict reader: NaN and Infinity literals are errors."""

    def refuse(literal: str) -> object:
        raise ValueError(f"not strict JSON: {literal}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def blown_up() -> shared.CompareResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the float64 oracle overflows too
        return shared.run_compare(
            shared.CompareOptions(impls=("jax",), loops=("harness",), steps=5, lr=1e30)
        )


@pytest.mark.parametrize("sidecar", [False, True], ids=["inline", "sidecar"])
def test_a_blown_up_run_is_strict_json_read_back_exactly(tmp_path, blown_up, sidecar):
    mine = blown_up.trajectories["jax/harness"]
    assert math.isinf(float(mine.loss[1])) and math.isnan(float(mine.loss[-1]))  # it did
    path = tmp_path / "run.json"
    limit = 0 if sidecar else 10**9
    shared.save_run(blown_up.to_json(arrays=False), path, blown_up.trajectories, inline_limit=limit)
    text = path.read_text()
    with pytest.raises(ValueError, match="not strict JSON: NaN"):
        _strict('{"x": NaN}')  # the strict reader does refuse the literals
    data = _strict(text)
    assert data["trajectories"]["jax/harness"]["loss"][1] == "Infinity"
    assert "NaN" in data["trajectories"]["jax/harness"]["loss"]
    back = shared.load_run(path)
    for key, t in blown_up.trajectories.items():
        got = back.trajectories[key]
        want32 = [np.asarray(v, np.float32) for v in t.loss]
        pairs = zip(got.loss, want32, strict=True)
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in pairs)
        for group in ("params", "state"):
            for name, steps in getattr(t, group).items():
                pairs = zip(getattr(got, group)[name], steps, strict=True)
                assert all(
                    np.array_equal(a, np.asarray(b, np.float32), equal_nan=True) for a, b in pairs
                )
    pair = back.comparison["pairs"][0]
    assert blown_up.pairs[0].max_abs == math.inf  # written as "Infinity", read back as inf
    assert data["comparison"]["pairs"][0]["max_abs"] == "Infinity"
    assert pair["max_abs"] == math.inf


def test_the_command_line_writes_strict_json(tmp_path, capsys):
    path = tmp_path / "run.json"
    argv = ["compare", "--impls", "jax", "--loop", "harness", "--steps", "5", "--lr", "1e30"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main([*argv, "--json", str(path)]) == 1  # NaN never agrees
    capsys.readouterr()
    _strict(path.read_text())
    assert main(["diff", str(path), str(path)]) == 1  # NaN is not equal to itself: no agreement
