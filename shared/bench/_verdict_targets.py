"""The verdict bench's targets: what a cross-validation may cost against plain training.

Each target is computed from the bench's rows (`bench --verdict --json` writes them) and
states its bound with the measured value, in the form the site's targets table reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._report import Target

GIB = 2**30
PEAK_GIB = 2.0
"""The largest model's verdict (two implementations) peaks at no more than this."""
TIME_RATIO = 2.0
"""The largest model's verdict takes at most this many times its plain training."""
STEP_GROWTH = 0.10
"""From 100 steps to the step sweep's longest run, the verdict's peak grows at most this much."""
LOCKSTEP_RATIO = 3.0
"""A lockstep step at every step makes the harness run at most this many times slower."""

Row = Mapping[str, Any]


def verdict_targets(rows: Sequence[Row], *, quick: bool = False) -> list[Target]:
    """The targets the rows can judge (`quick`: printed, not judged: the shapes are small)."""
    out: list[Target] = []
    values = [r for r in rows if r["sweep"] == "values"]
    if values:
        largest = max(values, key=lambda r: r["size"])
        label = f"{largest['label']}, {largest['steps']} steps"
        peak = largest["verdict_rss"] / GIB
        ratio = largest["verdict_s"] / largest["plain_s"]
        out.append(
            Target(
                f"verdict peak ≤ {PEAK_GIB:g} GiB ({label}): {peak:.2f} GiB",
                peak <= PEAK_GIB,
                not quick,
            )
        )
        out.append(
            Target(
                f"verdict time ≤ {TIME_RATIO:g}x plain ({label}): {ratio:.2f}x",
                ratio <= TIME_RATIO,
                not quick,
            )
        )
    by_steps = {r["steps"]: r for r in rows if r["sweep"] == "steps"}
    if 100 in by_steps and max(by_steps) > 100:
        longest = max(by_steps)
        growth = by_steps[longest]["verdict_rss"] / by_steps[100]["verdict_rss"] - 1
        out.append(
            Target(
                f"verdict peak at {longest} steps within {STEP_GROWTH:.0%} of 100 steps': "
                f"{growth:+.1%}",
                growth <= STEP_GROWTH,
                not quick,
            )
        )
    lockstep = {
        (r["label"].split(", lockstep")[0], r["lockstep"]): r
        for r in rows
        if r["sweep"] == "lockstep"
    }
    for shape in dict.fromkeys(s for s, _ in lockstep):
        if (shape, "off") in lockstep and (shape, "every") in lockstep:
            ratio = lockstep[shape, "every"]["verdict_s"] / lockstep[shape, "off"]["verdict_s"]
            out.append(
                Target(
                    f"lockstep at every step ≤ {LOCKSTEP_RATIO:g}x the run without ({shape}): "
                    f"{ratio:.2f}x",
                    ratio <= LOCKSTEP_RATIO,
                    not quick,
                )
            )
    return out
