"""A comparison run's result: trajectories, pairs, evals, analyses, and its JSON contract."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._divergence import PairResult
from ._spec import AnalysisResult
from ._stream import SERIES_COLUMNS
from ._stream_run import Window
from ._trajectory import Trajectory


@dataclass
class CompareResult:
    """Everything a comparison run produced; `to_json` gives the documented contract.

    `trajectories` holds every trajectory by key; a run that kept only summaries
    (`kept == "summaries"`) holds each one's losses, and `windows` the full values around
    each pair's first divergence.
    """

    config: dict[str, Any]
    trajectories: dict[str, Trajectory]
    errors: dict[str, str]
    reference: str
    pairs: list[PairResult]
    versions: dict[str, str]
    model: str = ""
    evals: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per trajectory, the held-out metrics after the last step (models with an eval)."""
    eval_diffs: dict[str, float] = field(default_factory=dict)
    """Per trajectory, max |difference| of its held-out outputs from the reference's."""
    eval_atol: float | None = None
    eval_atols: dict[str, float] = field(default_factory=dict)
    """Per trajectory, a bound of its own for its held-out outputs (`Tolerances.evals`)."""
    analyses: list[AnalysisResult] = field(default_factory=list)
    errors_full: dict[str, str] = field(default_factory=dict)
    """Each failure's whole message (`errors` holds its first line)."""
    kept: str = "trajectories"
    """`"trajectories"` (every step of every leaf) or `"summaries"` (a large run)."""
    windows: dict[tuple[str, str], Window] = field(default_factory=dict)
    order: str = ""
    """How the leaves that diverge at a step are ordered (the data-flow order's source)."""
    lockstep_errors: dict[str, str] = field(default_factory=dict)
    """Per trajectory, why its lockstep could not run (its free-running verdict stands)."""

    @property
    def agree(self) -> bool:
        """No failure, every pair agrees, agrees locally, differs as expected or is only
        reported (held-out outputs too), and every analysis is content."""
        pairs_ok = all(p.ok and not self._eval_off(p) for p in self.pairs)
        return not self.errors and pairs_ok and all(a.ok for a in self.analyses)

    def _eval_off(self, pair: PairResult) -> bool:
        # The held-out outputs are measured against the reference's, so they judge only the
        # pair that claims the two implementations agree: a loop check (native against its
        # own harness loop) says nothing about the distance to another framework. A pair
        # that parts running free for a stated reason (`parting`: it agrees step by step)
        # has its outputs parted with it: they are shown, not judged.
        atol = self.eval_atol_for(pair.a)
        if atol is None or pair.kind != "across" or pair.tolerance.expected or not pair.judged:
            return False
        if pair.parting is not None:
            return False
        return self.eval_diffs.get(pair.a, 0.0) > atol

    def eval_atol_for(self, trajectory: str) -> float | None:
        """The bound of `trajectory`'s held-out outputs (`None`: the model has no eval)."""
        if self.eval_atol is None:
            return None
        return self.eval_atols.get(trajectory, self.eval_atol)

    def analysis(self, key: str) -> Any:
        """The payload of the analysis stored under `key` (e.g. `"drift"`), or `None`."""
        return next((a.payload for a in self.analyses if a.key == key), None)

    def status(self, trajectory: str) -> str:
        """`"reference"`, `"failed"`, `"diverge"`, `"expected"` or `"agree"`: the
        trajectory's verdict over every pair it is the first run of."""
        if trajectory == self.reference:
            return "reference"
        if trajectory in self.errors:
            return "failed"
        mine = [p for p in self.pairs if p.a == trajectory]
        if any(not p.ok or self._eval_off(p) for p in mine):
            return "diverge"
        if any(p.expected for p in mine):
            return "expected"
        return "agree"

    def counts(self) -> dict[str, int]:
        """How many trajectories are the reference, agree, diverge, differ as expected and
        failed."""
        out = {"reference": 1, "agree": 0, "diverge": 0, "expected": 0, "failed": 0}
        for key in [*self.trajectories, *self.errors]:
            if key != self.reference:
                out[self.status(key)] += 1
        return out

    def summary_arrays(self) -> dict[str, np.ndarray]:
        """A large run's per-step summaries and windows, by the sidecar keys its JSON names
        (`series_P_L`: pair P's leaf L, one row per step: `SERIES_COLUMNS`; `window_P_a_L`,
        `window_P_b_L`: the values at the window's steps). Empty for a run that kept its
        trajectories, whose JSON holds every value already."""
        if self.kept != "summaries":
            return {}
        out: dict[str, np.ndarray] = {}
        for i, p in enumerate(self.pairs):
            for j, rows in enumerate(p.series.values()):
                out[f"series_{i}_{j}"] = rows
            window = self.windows.get((p.a, p.b))
            if window is not None:
                for side, values in (("a", window.a), ("b", window.b)):
                    for j, leaf in enumerate(sorted(values[0]) if values else []):
                        out[f"window_{i}_{side}_{j}"] = np.stack([v[leaf] for v in values])
        return out

    def _pair_json(self, i: int, pair: PairResult) -> dict[str, Any]:
        out = pair.to_json()
        if self.kept != "summaries":
            return out
        out["series"] = {
            leaf: {"sidecar": f"series_{i}_{j}", "columns": list(SERIES_COLUMNS)}
            for j, leaf in enumerate(pair.series)
        }
        window = self.windows.get((pair.a, pair.b))
        if window is not None and window.a:
            leaves = sorted(window.a[0])
            out["window"] = {
                "steps": window.steps,
                **{
                    side: {
                        leaf: {"sidecar": f"window_{i}_{side}_{j}"} for j, leaf in enumerate(leaves)
                    }
                    for side in ("a", "b")
                },
            }
        return out

    def to_json(self, arrays: bool = True) -> dict[str, Any]:
        """The JSON contract. `arrays=False` leaves each trajectory's loss, params and state
        out (`save_run` writes them from the trajectories themselves)."""
        trajectories = {k: t.to_json() if arrays else {} for k, t in self.trajectories.items()}
        for k, ev in self.evals.items():
            trajectories[k]["eval"] = ev
        comparison: dict[str, Any] = {
            "reference": self.reference,
            "agree": self.agree,
            "counts": self.counts(),
            "kept": self.kept,
            "order": self.order,
            "pairs": [self._pair_json(i, p) for i, p in enumerate(self.pairs)],
        }
        if self.lockstep_errors:
            comparison["lockstep_errors"] = self.lockstep_errors
        if self.eval_atol is not None:
            comparison["eval"] = {"atol": self.eval_atol, "max_abs": self.eval_diffs}
            if self.eval_atols:
                comparison["eval"]["atol_by_trajectory"] = self.eval_atols
        for a in self.analyses:
            comparison[a.key] = a.payload
            if not a.ok:
                comparison.setdefault("failed_analyses", []).append(a.key)
        out = {
            "model": self.model,
            "config": self.config,
            "versions": self.versions,
            "trajectories": trajectories,
            "errors": self.errors,
            "comparison": comparison,
        }
        if self.errors_full:
            out["errors_full"] = self.errors_full
        return out


def package_versions(distributions: Mapping[str, str]) -> dict[str, str]:
    """Installed versions: report key -> version of the named distribution."""
    out = {}
    for key, dist in distributions.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = "not installed"
    return out
