"""Every replica's state in a data-parallel run without synchronisation: where they part."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._spec import AnalysisResult
from ._trajectory import Trajectory


@dataclass(frozen=True)
class ReplicaSplit:
    """Where one trajectory's replicas first disagree.

    **Fields:**

    - `trajectory`: the trajectory's key.
    - `step`: the first step at which two replicas hold different state (`None`: never).
    - `leaf`: the first state leaf that differs there.
    - `replicas`: the replicas that differ from replica 0 at that step.
    - `off_reference`: per replica, the first step at which its state differs from the
      single-device run's (`None`: never).
    """

    trajectory: str
    step: int | None
    leaf: str | None
    replicas: list[int]
    off_reference: list[int | None]


def _split(key: str, replicas: list[dict[str, np.ndarray]], reference: Trajectory) -> ReplicaSplit:
    step: int | None = None
    leaf: str | None = None
    differ: list[int] = []
    for s, named in enumerate(replicas):
        for name in sorted(named):
            rows = np.asarray(named[name])
            apart = [r for r in range(1, rows.shape[0]) if not np.array_equal(rows[r], rows[0])]
            if apart:
                step, leaf, differ = s, f"state.{name}", apart
                break
        if step is not None:
            break
    count = np.asarray(next(iter(replicas[0].values()))).shape[0] if replicas[0] else 0
    off: list[int | None] = []
    for r in range(count):
        first = None
        for s, named in enumerate(replicas):
            if s >= len(reference.loss) + 1:
                break
            if any(
                name in reference.state
                and not np.array_equal(np.asarray(named[name])[r], reference.state[name][s])
                for name in named
            ):
                first = s
                break
        off.append(first)
    return ReplicaSplit(key, step, leaf, differ, off)


def replica_report(
    replicas: dict[str, list[dict[str, np.ndarray]]], reference: Trajectory, reference_key: str
) -> AnalysisResult:
    """Per trajectory: the first step its replicas disagree, which ones, and when each one
    leaves the single-device run (state compared bitwise: a replica's own statistics are not
    a rounding difference)."""
    splits = [_split(key, each, reference) for key, each in replicas.items()]
    rows = [
        (
            s.trajectory,
            "-" if s.step is None else str(s.step),
            s.leaf or "-",
            ", ".join(map(str, s.replicas)) or "-",
            ", ".join("-" if o is None else str(o) for o in s.off_reference),
        )
        for s in splits
    ]
    notes = [
        f"{s.trajectory}: replicas {', '.join(map(str, s.replicas))} hold other state than "
        f"replica 0 from step {s.step} ({s.leaf})"
        for s in splits
        if s.step is not None
    ]
    return AnalysisResult(
        key="replicas",
        payload=[asdict(s) for s in splits],
        title=f"every replica's state (unsynced), against each other and {reference_key}",
        head=(
            "trajectory",
            "replicas apart from step",
            "first leaf",
            "replicas unlike replica 0",
            f"each replica leaves {reference_key} at step",
        ),
        rows=rows,
        notes=notes or ["every replica holds the same state at every step"],
        ok=not notes,
    )
