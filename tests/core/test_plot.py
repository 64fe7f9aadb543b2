"""The compare plot: every trajectory drawn apart, no empty panel, labelled axes, and a ULP
heat map that marks the step where a run departs (checked against runs built by hand)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

import shared
from shared.report import figure, trajectory_styles, ulp_map

matplotlib.use("Agg")

STEPS = 6


def _trajectory(offset_at: int | None = None, state: bool = True) -> shared.Trajectory:
    """A made-up run: the loss falls, `w` grows; from step `offset_at` on, `w` and the loss
    sit exactly one float32 ULP above the reference's."""
    t = shared.Trajectory()
    w = np.array([1.0, -2.0], np.float32)
    t.record_initial({"w": w}, {"mean": np.zeros(2, np.float32)} if state else {})
    for s in range(1, STEPS + 1):
        loss = np.float32(10.0 / s)
        value = w * np.float32(s)
        if offset_at is not None and s >= offset_at:
            loss = np.nextafter(loss, np.float32(np.inf))
            value = np.nextafter(value, np.float32(np.inf))
        t.record_step(loss, {"w": value}, {"mean": np.full(2, s, np.float32)} if state else {})
    return t


def _result(trajectories, evals=None) -> shared.CompareResult:
    return shared.CompareResult(
        config={},
        trajectories=trajectories,
        errors={},
        reference=next(iter(trajectories)),
        pairs=[],
        versions={},
        evals=evals or {},
    )


RUNS = {
    f"{framework}/{loop}": _trajectory(offset_at=3 if framework == "keras" else None)
    for framework in ("jax", "flax_linen", "flax_nnx", "haiku", "equinox", "keras")
    for loop in ("harness", "native", "scan")
} | {"oracle/float64": _trajectory()}


def test_every_trajectory_gets_its_own_colour_and_line_style_pair():
    styles = trajectory_styles(RUNS)
    pairs = {(s.color, str(s.linestyle)) for s in styles.values()}
    assert len(pairs) == len(RUNS) == 19
    # colour by framework, line style by loop
    assert styles["haiku/native"].color == styles["haiku/scan"].color
    assert styles["haiku/native"].linestyle == styles["keras/native"].linestyle
    assert styles["haiku/native"].color != styles["keras/native"].color


def test_too_many_loops_to_tell_apart_is_a_clear_error():
    keys = [f"jax/loop{i}" for i in range(7)]
    with pytest.raises(ValueError, match="more than 6 loops"):
        trajectory_styles(keys)


def test_the_ulp_map_marks_exactly_where_a_run_departs():
    rows, ulps = ulp_map(_result(RUNS))
    assert rows == [k for k in RUNS if k != "jax/harness"]
    for row, key in zip(ulps, rows, strict=True):
        # keras's runs sit one ULP off from step 3 on (columns are steps 1..N); the rest are
        # the reference's bits
        want = [0, 0, 1, 1, 1, 1] if key.startswith("keras/") else [0] * STEPS
        assert row.tolist() == want, key


@pytest.mark.parametrize(
    ("with_state", "with_eval", "panels"),
    [(True, True, 6), (False, False, 4), (True, False, 5)],
)
def test_no_panel_is_empty_and_every_axis_is_labelled(with_state, with_eval, panels):
    runs = {k: _trajectory(3 if k.startswith("keras") else None, with_state) for k in RUNS}
    evals = {k: {"accuracy": 0.9 + 0.001 * i} for i, k in enumerate(runs)} if with_eval else None
    fig = figure(_result(runs, evals))
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == panels
    for ax in axes:
        assert ax.lines or ax.images or ax.patches, ax.get_title()  # drawn on
        assert ax.get_title() and ax.get_xlabel(), ax.get_title()
        assert ax.get_ylabel() or ax.get_yticklabels(), ax.get_title()
    titles = " ".join(ax.get_title() for ax in axes)
    assert ("state:" in titles) == with_state and ("held-out" in titles) == with_eval
    legends = {legend.get_title().get_text(): legend for legend in fig.legends}
    assert set(legends) == {"framework (colour)", "loop (line style)"}
    frameworks = [t.get_text() for t in legends["framework (colour)"].get_texts()]
    loops = [t.get_text() for t in legends["loop (line style)"].get_texts()]
    assert frameworks == ["jax", "flax_linen", "flax_nnx", "haiku", "equinox", "keras", "oracle"]
    assert loops == ["harness", "native", "scan", "float64"]


def test_log_axis_ticks_are_plain_numbers():
    fig = figure(_result(RUNS))
    fig.canvas.draw()
    loss = next(ax for ax in fig.axes if ax.get_title() == "training loss")
    labels = [t.get_text() for t in loss.get_yticklabels() if t.get_text()]
    assert labels and all("times" not in t and "^" not in t for t in labels), labels
    assert any(t in ("2", "5", "10") for t in labels), labels
