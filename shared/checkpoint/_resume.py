"""Resume: train K steps and save, restore in a fresh process, train on, compare bitwise."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .._registry import implementations, is_registered
from ..core import BITWISE, PairResult, Trajectory, compare, contained, private_folder
from ._audit import Finding, audit
from ._case import Built, Case
from ._errors import CheckpointError
from ._store import CheckpointStore
from ._trees import savable


@dataclass
class Saved:
    """A case trained to step `at` and saved: the steps so far, the save's audit, and the
    uninterrupted run (the same objects trained on, in memory, to the last step)."""

    case: Case
    directory: Path
    at: int
    before: Trajectory
    findings: list[Finding]
    uninterrupted: Trajectory


def save_case(case: Case, at: int, directory: str | Path) -> Saved:
    """Train `case` for `at` steps from its initial values, save into `directory`, audit the
    save (restore it into freshly built objects and compare them with the live ones), then
    train the live objects on to the last step: the uninterrupted run."""
    if not 0 < at < case.steps:
        raise ValueError(f"--at: expected a step between 1 and {case.steps - 1}, got {at}")
    built = Built(case)
    trainer = built.trainer()
    before = built.train(trainer, 0, at)
    live = trainer.checkpoint()
    with CheckpointStore(directory, create=True) as store:
        store.save(at, live, {**built.identity, "case": case.to_json()})
        fresh = built.trainer()
        initial = fresh.checkpoint()
        fresh.restore(store.restore(initial, expect=built.identity))
        saved = set(store.meta(at)["leaves"])
    findings = audit(
        savable(live), savable(fresh.checkpoint()), saved=saved, initial=savable(initial)
    )
    uninterrupted = Trajectory(
        loss=list(before.loss),
        params={k: list(v) for k, v in before.params.items()},
        state={k: list(v) for k, v in before.state.items()},
    )
    with contained(f"training {case.label}"):
        trainer.run(*built.segment(at, case.steps), uninterrupted)
    return Saved(case, Path(directory), at, before, findings, uninterrupted)


def continue_from(
    directory: str | Path, steps: int | None = None, plugins: Collection[str] = ()
) -> tuple[Case, int, Trajectory]:
    """Restore the latest checkpoint in `directory` into freshly built objects and train on
    to `steps` (default: the case's). Returns the case, the step it started from, and the
    trajectory from there (its initial values are the restored ones).

    A checkpoint is data, never code: the model and implementation it names are built only
    when they are built in (the registry's names), or when `plugins` (the `--model` and
    `--impl` the user typed) names them exactly; anything else is a [`CheckpointError`][]
    before any import.
    """
    with CheckpointStore(directory) as store:
        meta = store.meta()
        try:
            case = Case.from_json(meta.get("case"))
        except CheckpointError as e:
            raise CheckpointError(
                f"checkpoint {store.directory}: its metadata names no usable run ({e})"
            ) from None
        trusted(case, plugins, store.directory)
        at = int(meta["step"])
        built = Built(case)
        trainer = built.trainer()
        trainer.restore(store.restore(trainer.checkpoint(), expect=built.identity))
    stop = case.steps if steps is None else steps
    if not at < stop <= case.steps:
        raise ValueError(f"--steps: expected {at + 1}..{case.steps} (saved at {at}), got {stop}")
    return case, at, built.train(trainer, at, stop)


def trusted(case: Case, plugins: Collection[str], directory: Path) -> None:
    """Refuse a case whose model or implementation is code the user did not name."""
    registered = is_registered(case.model)
    for option, name, built_in in (
        ("--model", case.model, registered),
        (
            "--impl",
            case.implementation,
            registered and case.implementation in implementations(case.model),
        ),
    ):
        if not built_in and name not in plugins:
            raise CheckpointError(
                f"checkpoint {directory}: its run names {option} {name!r}, which is not built "
                f"in; a checkpoint's code is never imported: pass {option} {name} yourself "
                "if you trust that file"
            )


def trajectory_bytes(trajectories: dict[str, Trajectory]) -> bytes:
    """Trajectories as one `.npz`, every value with its own dtype (JSON would make key data
    and counters float)."""
    arrays: dict[str, np.ndarray] = {}
    for key, t in trajectories.items():
        arrays[f"{key}|loss"] = np.stack(t.loss) if t.loss else np.zeros(0, np.float32)
        for group, values in (("params", t.params), ("state", t.state)):
            for name, per_step in values.items():
                arrays[f"{key}|{group}|{name}"] = np.stack(per_step)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def read_trajectories(path: str | Path) -> dict[str, Trajectory]:
    """Read back `trajectory_bytes`."""
    out: dict[str, Trajectory] = {}
    with np.load(path, allow_pickle=False) as data:
        for name in data.files:
            key, group, *leaf = name.split("|")
            t = out.setdefault(key, Trajectory())
            values = data[name]
            if group == "loss":
                t.loss = list(values)
            else:
                getattr(t, group)[leaf[0]] = list(values)
    return out


@dataclass
class Resumed:
    """One case of the resume proof: saved at `at`, resumed in a fresh process."""

    case: Case
    at: int
    pair: PairResult | None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None and not self.findings and self.pair is not None and self.pair.agree
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case.to_json(),
            "at": self.at,
            "bitwise": None if self.pair is None else self.pair.bitwise,
            "first_divergence": None
            if self.pair is None or self.pair.first_divergence is None
            else str(self.pair.first_divergence),
            "audit": [str(f) for f in self.findings],
            "error": self.error,
            "ok": self.ok,
        }


def joined(before: Trajectory, after: Trajectory) -> Trajectory:
    """Steps 0..K of `before` then K+1..N of `after`; step K's values are `after`'s (the
    restored ones), so that a restore that changes anything shows at step K."""
    out = Trajectory(
        loss=list(before.loss) + list(after.loss),
        params={k: v[:-1] + after.params[k] for k, v in before.params.items()},
        state={k: v[:-1] + after.state[k] for k, v in before.state.items()},
    )
    return out


def resume(
    cases: Sequence[Case],
    at: int,
    *,
    workdir: str | Path | None = None,
    progress: Any = None,
) -> list[Resumed]:
    """The resume proof for each case: train `at` steps here and save (audited), restore
    every case in one fresh Python process and train on, then compare the joined trajectory
    with the uninterrupted run bitwise."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="state-rosetta-resume-") as scratch:
            return resume(cases, at, workdir=scratch, progress=progress)
    root = Path(workdir)
    env = _child_env()  # before anything compiles, so that the fresh process can reuse it
    saved: dict[str, Saved] = {}
    results: dict[str, Resumed] = {}
    for i, case in enumerate(cases):
        if progress:
            progress(f"{case.label}: train {at} steps, save")
        try:
            saved[str(i)] = save_case(case, at, root / f"case-{i}")
        except Exception as e:
            results[str(i)] = Resumed(case, at, None, error=f"{type(e).__name__}: {e}")
    out = root / "resumed.npz"
    if saved:
        if progress:
            progress(f"restore {len(saved)} checkpoints in a fresh process")
        command = [sys.executable, "-m", "shared", "checkpoint", "continue", "--out", str(out)]
        for s in saved.values():  # this process built them: the fresh one may import them
            if not is_registered(s.case.model):
                command += ["--model", s.case.model]
            if s.case.implementation not in implementations(s.case.model):
                command += ["--impl", s.case.implementation]
        command += [str(s.directory) for s in saved.values()]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode not in (0, 1) or not out.is_file():
            raise RuntimeError(
                f"the fresh process failed (exit {done.returncode}): {done.stderr[-2000:]}"
            )
    after = read_trajectories(out) if saved else {}
    failed = json.loads(errors_path(out).read_text()) if errors_path(out).is_file() else {}
    for key, s in saved.items():
        if progress:
            progress(f"{s.case.label}: compare")
        mine = after.get(str(s.directory))
        if mine is None:
            error = failed.get(str(s.directory), "the fresh process did not report it")
            results[key] = Resumed(s.case, at, None, s.findings, f"in the fresh process: {error}")
            continue
        pair = compare(
            joined(s.before, mine),
            s.uninterrupted,
            BITWISE,
            names=(f"{s.case.label}/resumed", "uninterrupted"),
        )
        results[key] = Resumed(s.case, at, pair, s.findings)
    return [results[str(i)] for i in range(len(cases))]


def _child_env() -> dict[str, str]:
    """The fresh process's environment: this one's, sharing its compilation cache.

    With a persistent compilation cache, the fresh process loads the programs this one
    compiled instead of compiling them again: the same executables, so the numbers cannot
    change, and nothing else (no array, no Python object) is shared. Without one configured,
    both use `state-rosetta-xla-cache-<uid>` in the temporary directory (kept: later runs
    reuse it), made with mode 0700 and used only while it is this user's alone
    (`private_folder`): a folder someone else made there could hand back programs they
    replaced.
    """
    env = os.environ.copy()
    cache = jax.config.values.get("jax_compilation_cache_dir")
    if not cache:
        folder = private_folder(
            Path(tempfile.gettempdir()) / f"state-rosetta-xla-cache-{os.getuid()}"
        )
        if folder is None:  # someone else's, or open to others: compile twice instead
            return env
        cache = str(folder)
        for name, value in (
            ("jax_compilation_cache_dir", cache),
            ("jax_persistent_cache_min_compile_time_secs", 0),
            ("jax_persistent_cache_min_entry_size_bytes", 0),
        ):
            jax.config.update(name, value)
    env["JAX_COMPILATION_CACHE_DIR"] = cache
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def errors_path(out: Path) -> Path:
    """Where `checkpoint continue --out FILE.npz` writes the folders it could not continue."""
    return out.with_name(out.name + ".errors.json")
