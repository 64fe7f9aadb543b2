"""The comparison's arithmetic: ULP distances against hand-computed cases, and divergences."""

from __future__ import annotations

import numpy as np
import pytest

import shared


def test_ulp_distance_counts_representable_floats():
    one = np.float32(1.0)
    assert shared.ulp_distance(one, one) == 0
    assert shared.ulp_distance(one, np.nextafter(one, np.float32(2))) == 1
    assert shared.ulp_distance(np.float32(-0.0), np.float32(0.0)) == 0
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    assert shared.ulp_distance(-tiny, tiny) == 2  # across zero: -tiny, 0, +tiny
    # [1, 2) holds 2^23 float32 values.
    assert shared.ulp_distance(np.float32(1), np.float32(2)) == 2**23
    assert shared.ulp_distance(np.float32(np.nan), one) == np.iinfo(np.int64).max


def test_tolerance_agrees_by_ulp_or_by_abs_rel():
    a, b = np.float32(1.0), np.nextafter(np.float32(1.0), np.float32(2))
    assert not shared.BITWISE.agrees(a, b)
    assert shared.Tolerance(max_ulp=1).agrees(a, b)
    assert shared.Tolerance(atol=2e-7).agrees(a, b)
    assert not shared.Tolerance(atol=1e-8, rtol=1e-8).agrees(a, b)
    assert not shared.Tolerance(max_ulp=10, atol=1.0).agrees(np.nan, np.nan)


def _traj(loss, bias, mean):
    t = shared.Trajectory()
    t.record_initial({"bias": np.float32(bias[0])}, {"mean": np.float32(mean[0])})
    for s in range(len(loss)):
        t.record_step(
            np.float32(loss[s]),
            {"bias": np.float32(bias[s + 1])},
            {"mean": np.float32(mean[s + 1])},
        )
    return t


def test_compare_reports_bitwise_max_abs_and_first_divergence_in_causal_order():
    ref = _traj([3.0, 2.0, 1.0], [0, 1, 2, 3], [0, 1, 2, 3])
    same = _traj([3.0, 2.0, 1.0], [0, 1, 2, 3], [0, 1, 2, 3])
    result = shared.compare(same, ref)
    assert result.bitwise and result.agree and result.max_abs == 0
    # Step 2 differs in loss and bias but not mean: the loss comes first in a step.
    off = _traj([3.0, 2.5, 1.0], [0, 1, 2.25, 3], [0, 1, 2, 3])
    result = shared.compare(off, ref)
    assert not result.bitwise
    assert result.first_divergence == shared.Divergence(2, "loss")
    assert result.max_abs == 0.5
    # The state is checked before the loss in the same step.
    off_mean = _traj([3.0, 2.5, 1.0], [0, 1, 2, 3], [0, 1, 2.5, 3])
    assert shared.compare(off_mean, ref).first_divergence == shared.Divergence(2, "state.mean")
    # Within tolerance: differences are reported but no divergence.
    result = shared.compare(off, ref, shared.Tolerance(atol=0.5))
    assert result.agree and not result.bitwise


def test_shape_and_length_mismatches_are_divergences():
    ref = _traj([3.0, 2.0], [0, 1, 2], [0, 1, 2])
    shorter = _traj([3.0], [0, 1], [0, 1])
    assert shared.compare(shorter, ref).first_divergence == shared.Divergence(2, "state.mean")
    reshaped = _traj([3.0, 2.0], [0, 1, 2], [0, 1, 2])
    reshaped.state["mean"][1] = np.reshape(reshaped.state["mean"][1], (1,))
    result = shared.compare(reshaped, ref)
    assert result.first_divergence == shared.Divergence(1, "state.mean")


@pytest.mark.parametrize("value", [1 / 3, 1e-30, 3.4e38, -2.5e-45])
def test_json_round_trip_is_exact(value):
    t = _traj([value, -value], [0, value, 2], [value, 0, 1])
    import json

    back = shared.Trajectory.from_json(json.loads(json.dumps(t.to_json())))
    assert shared.compare(back, t).bitwise


def _pair(a, b, kind="across", expected=False, diverges=False):
    return shared.PairResult(
        a=a,
        b=b,
        bitwise=not diverges,
        max_abs=1.0 if diverges else 0.0,
        max_ulp=0,
        first_divergence=shared.Divergence(1, "loss") if diverges else None,
        tolerance=shared.Tolerance(expected=expected),
        kind=kind,
    )


def test_held_out_outputs_judge_only_the_pair_against_the_reference():
    # haiku/native's outputs sit 0.15 from the reference's (its dropout keys are its own:
    # its across pair is expected to differ), but its loop check against its own harness
    # loop is bitwise: the outputs' distance to another framework must not fail that check.
    pairs = [
        _pair("haiku/native", "linen/native", expected=True, diverges=True),
        _pair("haiku/native", "haiku/harness", kind="loop"),
        _pair("linen/native", "linen/harness", kind="loop"),
    ]
    result = shared.CompareResult(
        config={"steps": 2},
        trajectories={
            k: _traj([1.0], [0, 1], [0, 1])
            for k in ("linen/harness", "linen/native", "haiku/native")
        },
        errors={},
        reference="linen/harness",
        pairs=pairs,
        versions={},
        eval_diffs={"haiku/native": 0.15, "linen/native": 0.0},
        eval_atol=1e-5,
    )
    assert result.status("haiku/native") == "expected"
    assert result.agree
    # The same distance on a pair that claims agreement fails it.
    result.pairs[0] = _pair("haiku/native", "linen/native")
    assert result.status("haiku/native") == "diverge" and not result.agree
