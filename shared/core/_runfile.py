"""Saved runs: the JSON contract on disk (compact, exact), its loader, and `diff` of two runs.

Every float is written as the shortest decimal text that reads back as the same float32, so
a `json.load` of the file and a cast to float32 gives every value bit for bit; a non-finite
one as the string `"NaN"`, `"Infinity"` or `"-Infinity"`, so that the file is strict JSON.
A run whose params and state hold more than `INLINE_LIMIT` values (an MLP over hundreds of
steps) keeps them in a NumPy `.npz` sidecar beside the JSON instead, which the JSON names
(each distinct array once: bitwise-equal trajectories share it); `load_run` reads both. A
small run (a few values a step) is plain JSON.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._compare import PairResult, compare
from ._files import finite_or_named, json_bytes, write_atomic
from ._runread import read_json, read_trajectories
from ._tolerance import BITWISE, Tolerance
from ._trajectory import Trajectory

INLINE_LIMIT = 200_000
"""Params and state values above which a run's arrays go to the `.npz` sidecar."""

SIDECAR_SUFFIX = ".arrays.npz"


def _short_floats(array: np.ndarray) -> Any:
    """Nested lists of Python floats whose repr is the shortest exact float32 text."""
    a32 = np.asarray(array, np.float32)
    if a32.ndim == 0:
        return float(str(a32)) if np.isfinite(a32) else float(a32)
    return [_short_floats(v) for v in a32]


def save_run(
    run: Mapping[str, Any],
    path: str | Path,
    trajectories: Mapping[str, Trajectory],
    *,
    inline_limit: int = INLINE_LIMIT,
    extra: Mapping[str, np.ndarray] | None = None,
) -> list[Path]:
    """Write a run's JSON (and its sidecar, when large) atomically; return the paths written.

    **Arguments:**

    - `run`: the JSON contract (`CompareResult.to_json()`, with or without arrays); each
      trajectory's loss, params and state are written from `trajectories`, as exact short
      text or as sidecar references, and its other keys (`eval`) are kept.
    - `path`: the JSON file.
    - `trajectories`: the run's trajectories, the source of the arrays.
    - `inline_limit`: above this many params and state values, arrays go to the sidecar.
    - `extra`: more arrays for the sidecar, by the keys the JSON names them with (a large
      run's per-step summaries and windows); any make the run write a sidecar.
    """
    path = Path(path)
    out = dict(run)
    total = sum(
        int(np.size(v))
        for t in trajectories.values()
        for group in (t.params, t.state)
        for vs in group.values()
        for v in vs
    )
    sidecar = total > inline_limit or bool(extra)
    arrays: dict[str, np.ndarray] = dict(extra or {})
    written = []
    entries = {}
    for key, entry in run["trajectories"].items():
        t = trajectories[key]
        new = dict(entry)
        new["loss"] = [_short_floats(v) for v in t.loss]
        for group, values in (("params", t.params), ("state", t.state)):
            converted: dict[str, Any] = {}
            for name, steps in values.items():
                same_shape = len({np.shape(v) for v in steps}) == 1
                if sidecar and same_shape:
                    stacked = np.stack(steps).astype(np.float32)
                    # Bitwise-equal trajectories (most of a run) share one stored array.
                    array_key = hashlib.sha256(stacked.tobytes()).hexdigest()[:24]
                    arrays.setdefault(array_key, stacked)
                    converted[name] = {"sidecar": array_key, "shape": list(stacked.shape)}
                else:
                    converted[name] = [_short_floats(v) for v in steps]
            new[group] = converted
        entries[key] = new
    out["trajectories"] = entries
    if sidecar:
        side = path.with_name(path.name + SIDECAR_SUFFIX)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        write_atomic(side, buffer.getvalue())
        written.append(side)
        out["sidecar"] = side.name
    write_atomic(path, json_bytes(out))  # strict: a non-finite float as "NaN", "Infinity"
    written.insert(0, path)
    return written


@dataclass
class SavedRun:
    """A run read back by [`load_run`][]: the JSON, with trajectories as float32 arrays."""

    path: Path
    model: str
    config: dict[str, Any]
    versions: dict[str, str]
    trajectories: dict[str, Trajectory]
    errors: dict[str, str]
    comparison: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


def load_run(path: str | Path) -> SavedRun:
    """Read a run written by `state-rosetta compare --json` (and its sidecar, if any).

    Raises `ValueError` naming the file and what is wrong with it (a file is data from
    anyone: see `_runread`); `"NaN"`, `"Infinity"` and `"-Infinity"` where numbers go are
    read back as those floats.
    """
    path = Path(path)
    data = read_json(path)
    trajectories = read_trajectories(path, data)
    return SavedRun(
        path,
        data["model"],
        data["config"],
        data.get("versions", {}),
        trajectories,
        data.get("errors", {}),
        finite_or_named(data.get("comparison", {})),
        data,
    )


RUN_ONLY = ("impls", "user_impls", "loops", "reference", "tolerance", "data")
"""Config keys that say what ran and where it was saved, not what was trained."""


def config_differences(a: SavedRun, b: SavedRun) -> list[str]:
    """What differs between two runs' model and config (ignoring which ran), one per line."""
    out = []
    if a.model != b.model:
        out.append(f"model: {a.model!r} vs {b.model!r}")
    for key in sorted(set(a.config) | set(b.config)):
        if key in RUN_ONLY:
            continue
        va, vb = a.config.get(key, "<absent>"), b.config.get(key, "<absent>")
        if va != vb:
            out.append(f"{key}: {va!r} vs {vb!r}")
    return out


def pair_trajectories(a: SavedRun, b: SavedRun) -> list[tuple[str, str]]:
    """Which trajectory of `a` is compared with which of `b`.

    The same key where both runs hold it (`oracle/float64` too); then, of the rest (two runs
    of different implementations), each loop of `a`'s first remaining implementation with the
    same loop of `b`'s.
    """
    pairs = [(k, k) for k in a.trajectories if k in b.trajectories]

    def first_by_loop(run: SavedRun) -> dict[str, str]:
        rest = [k for k in run.trajectories if k not in a.trajectories or k not in b.trajectories]
        impl = rest[0].partition("/")[0] if rest else None
        return {k.partition("/")[2]: k for k in rest if k.partition("/")[0] == impl}

    loops_a, loops_b = first_by_loop(a), first_by_loop(b)
    return pairs + [(loops_a[loop], loops_b[loop]) for loop in loops_a if loop in loops_b]


def diff_runs(
    a: SavedRun, b: SavedRun, tolerance: Tolerance = BITWISE
) -> tuple[list[PairResult], list[str]]:
    """Compare two saved runs trajectory by trajectory (`a` against `b` as the reference).

    **Returns:** the pair results (named by the two runs' trajectory keys), and the
    trajectories only one of the runs holds.
    """
    pairs = pair_trajectories(a, b)
    results = [
        compare(a.trajectories[ka], b.trajectories[kb], tolerance, names=(ka, kb))
        for ka, kb in pairs
    ]
    paired_a = {ka for ka, _ in pairs}
    paired_b = {kb for _, kb in pairs}
    unpaired = [f"{a.path}: {k}" for k in a.trajectories if k not in paired_a]
    unpaired += [f"{b.path}: {k}" for k in b.trajectories if k not in paired_b]
    return results, unpaired


def summary_counts(pairs: Sequence[PairResult]) -> dict[str, int]:
    """How many pairs agree and diverge."""
    diverge = sum(not p.agree for p in pairs)
    return {"agree": len(pairs) - diverge, "diverge": diverge}
