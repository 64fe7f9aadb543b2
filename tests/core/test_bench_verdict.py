"""The verdict bench (`bench --verdict`): its targets judge rows as their statements say,
its growth fit recovers a known power law, and a real quick run writes its rows and
targets."""

from __future__ import annotations

import json

import pytest

from shared.bench import VerdictCase as Case
from shared.bench import VerdictMeasured as Measured
from shared.bench import verdict_cases as cases
from shared.bench import verdict_fit as fit
from shared.bench import verdict_targets
from shared.cli import main

MIB = 2**20


def _row(sweep, label, steps, size, plain_s, verdict_s, verdict_mib, lockstep="on"):
    return {
        "sweep": sweep,
        "label": label,
        "steps": steps,
        "size": size,
        "lockstep": lockstep,
        "plain_s": plain_s,
        "verdict_s": verdict_s,
        "plain_rss": 500 * MIB,
        "verdict_rss": verdict_mib * MIB,
    }


def test_targets_judge_peak_time_step_growth_and_lockstep():
    rows = [
        _row("values", "D=10", 100, 20, 1.0, 9.0, 100),  # small: not the one judged
        _row("values", "D=1000000", 100, 2_000_000, 10.0, 19.0, 1900),
        _row("steps", "100 steps", 100, 100, 10.0, 19.0, 1000),
        _row("steps", "1000 steps", 1000, 1000, 100.0, 190.0, 1150),  # +15 %
        _row("lockstep", "tiny, lockstep off", 200, 4, 1.0, 2.0, 100, "off"),
        _row("lockstep", "tiny, lockstep every", 200, 4, 1.0, 7.0, 100, "every"),  # 3.5x
    ]
    got = {t.text.split(" (")[0].split(":")[0]: t for t in verdict_targets(rows)}
    assert got["verdict peak ≤ 2 GiB"].ok  # 1900 MiB is 1.86 GiB
    assert got["verdict time ≤ 2x plain"].ok  # 1.9x, the largest size's, not the small 9x
    step = next(t for t in verdict_targets(rows) if "1000 steps" in t.text)
    assert not step.ok and step.text.endswith("+15.0%")
    lockstep = next(t for t in verdict_targets(rows) if t.text.startswith("lockstep"))
    assert not lockstep.ok and lockstep.text.endswith("3.50x")
    assert all(t.judged for t in verdict_targets(rows))
    assert not any(t.judged for t in verdict_targets(rows, quick=True))


def test_growth_fit_recovers_a_power_law():
    # time = 2 x^1 and memory = 100 x^0 (flat) over the values sweep.
    measured = [
        Measured(Case("values", f"x={x}", "bias-adder", 10, size=x), 2.0 * x, 4.0 * x, 100, 100)
        for x in (10, 100, 1000)
    ]
    (growth,) = fit(measured)
    assert growth.plain_time == pytest.approx(1.0)
    assert growth.verdict_memory == pytest.approx(0.0, abs=1e-12)


def test_the_sweeps_cover_values_steps_depth_and_lockstep():
    chosen = cases((1000, 10_000), (10, 100), (1, 4))
    assert {c.sweep for c in chosen} == {"values", "steps", "depth", "lockstep"}
    # the step sweep runs at the largest size
    assert {c.values["features"] for c in chosen if c.sweep == "steps"} == {10_000}
    assert {c.lockstep for c in chosen if c.sweep == "lockstep"} == {"off", "every"}


@pytest.mark.slow  # ten cases, each two fresh processes that import JAX: about a minute
def test_a_quick_verdict_bench_writes_rows_and_targets(tmp_path):
    path = tmp_path / "verdict.json"
    assert main(["bench", "--verdict", "--quick", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["command"] == "state-rosetta bench --verdict --quick"
    assert {r["sweep"] for r in data["rows"]} == {"values", "steps", "depth", "lockstep"}
    assert all(r["plain_s"] > 0 and r["verdict_rss"] > 0 for r in data["rows"])
    assert data["targets"] and not any(t["judged"] for t in data["targets"])
