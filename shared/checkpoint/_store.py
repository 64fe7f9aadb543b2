"""A folder of checkpoints, one per step, written by orbax and read back against a target.

Each step's folder holds two items: `train`, the pytree (orbax `StandardSave`), and `meta`,
JSON naming the model, implementation, loop and run settings plus every saved leaf's shape
and dtype. Orbax writes a step under a temporary name and renames it when complete, so a
killed save never looks like a checkpoint; the leftover temporary folder is removed the next
time the folder is opened for writing.

Once orbax is done, the store writes a digest of every file of the step (`DIGEST`, by an
atomic rename): a step counts as complete only with it, and every read checks it first, so
a truncated or corrupted file is named before orbax reads a byte of it (orbax would fail
deep inside tensorstore, or, for a flipped bit, not at all).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orbax.checkpoint as ocp

from ..core import named_leaves, write_atomic
from ._errors import CheckpointError
from ._lock import FolderLock, writable_folder
from ._trees import abstract, describe_leaves, restored_into, savable

FORMAT = "state-rosetta-checkpoint/1"
"""The `format` entry of every checkpoint's metadata."""

DIGEST = "state-rosetta.sha256.json"
"""The file, in each step's folder, that lists the SHA-256 and size of every other file."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0].split(" [tensorstore_spec=")[0] if text else ""
    first = first if len(first) <= 160 else first[:157] + "..."
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _files(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file under `folder` but the digest, with its size and SHA-256.

    A link anywhere in it is refused (a [`CheckpointError`][]): it could point out of the
    folder, and the digest would vouch for a file the checkpoint does not hold.
    """
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in sorted([*dirs, *files]):
            p = Path(root) / name
            if p.is_symlink():
                raise CheckpointError(
                    f"checkpoint {folder.parent}: {p.relative_to(folder.parent)} is a link; a "
                    "checkpoint holds its files itself"
                )
        for name in files:
            p = Path(root) / name
            if p.name == DIGEST and Path(root) == folder:
                continue
            out[str(p.relative_to(folder))] = {
                "bytes": p.stat().st_size,
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            }
    return dict(sorted(out.items()))


class CheckpointStore:
    """The checkpoints in one folder, one per step.

    **Arguments:**

    - `directory`: the folder (made absolute: orbax needs an absolute path).
    - `create`: make the folder if it does not exist, and lock it for writing (for saving):
      a folder that cannot be written, or that another process is writing, is a
      [`CheckpointError`][] at once. Otherwise a missing folder is one.
    """

    def __init__(self, directory: str | Path, *, create: bool = False) -> None:
        self.directory = Path(directory).expanduser().absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"checkpoint {self.directory}: not a folder")
        if not create and not self.directory.is_dir():
            raise CheckpointError(f"checkpoint {self.directory}: no such folder")
        self._manager: ocp.CheckpointManager | None = None
        self._writable = create
        self._lock: FolderLock | None = None
        if create:  # before orbax sees the folder: it would hang on one it cannot write
            writable_folder(self.directory)
            self._lock = FolderLock(self.directory)

    @property
    def manager(self) -> ocp.CheckpointManager:
        if self._manager is None:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=None,  # keep every step: a resume may start from any of them
                create=self._writable,
                # A save killed half-way leaves "<step>.orbax-checkpoint-tmp-*": removed here,
                # so that it can neither block nor pose as the next save of that step.
                cleanup_tmp_directories=self._writable,
            )
            self._manager = ocp.CheckpointManager(
                self.directory, item_names=("train", "meta"), options=options
            )
        return self._manager

    def close(self) -> None:
        try:
            if self._manager is not None:
                self._manager.close()
                self._manager = None
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def steps(self) -> list[int]:
        """The steps with a complete checkpoint, in order: orbax finished them (temporary
        folders are not steps) and the store wrote their digest."""
        return sorted(s for s in self.manager.all_steps() if self._digest(s).is_file())

    def _digest(self, step: int) -> Path:
        return self.directory / str(step) / DIGEST

    def latest(self) -> int:
        """The last complete step; a [`CheckpointError`][] when there is none."""
        steps = self.steps()
        if not steps:
            undigested = sorted(self.manager.all_steps())
            if undigested:
                raise CheckpointError(
                    f"checkpoint {self.directory}: step {undigested[-1]} has no "
                    f"{DIGEST}: it was not written by state-rosetta, or its save was killed "
                    "before it finished"
                )
            raise CheckpointError(f"checkpoint {self.directory}: no complete checkpoint in it")
        return steps[-1]

    def verify(self, step: int) -> None:
        """Check every file of `step` against its digest; a [`CheckpointError`][] names the
        first file that is missing, truncated or corrupted."""
        where = f"checkpoint {self.directory}: step {step}"
        try:
            expected = json.loads(self._digest(step).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{where}: its {DIGEST} cannot be read ({e})") from None
        if not isinstance(expected, dict) or not expected:
            raise CheckpointError(f"{where}: its {DIGEST} lists no files")
        found = _files(self.directory / str(step))
        for name, want in expected.items():
            got = found.get(name)
            if got is None:
                raise CheckpointError(f"{where}: file {name} is missing")
            if not isinstance(want, dict) or got["bytes"] != want.get("bytes"):
                raise CheckpointError(
                    f"{where}: file {name} is truncated or extended ({got['bytes']} bytes, "
                    f"{want.get('bytes') if isinstance(want, dict) else '?'} saved)"
                )
            if got["sha256"] != want.get("sha256"):
                raise CheckpointError(f"{where}: file {name} is corrupted (its SHA-256 differs)")
        extra = sorted(set(found) - set(expected))
        if extra:
            raise CheckpointError(
                f"{where}: file {extra[0]} is not in its {DIGEST}; nothing the digest does not "
                "vouch for is read"
            )

    def save(self, step: int, tree: Any, meta: Mapping[str, Any]) -> Path:
        """Write `tree` as step `step`, with `meta`, wait until orbax is done, then write the
        step's digest.

        Refuses (a [`CheckpointError`][]) a step that exists, and a folder whose checkpoints
        are of another model, implementation or loop, or not ours: nothing is overwritten. A
        step of this run that a kill left without its digest is removed first.
        """
        existing = self.steps()
        if step in existing:
            raise CheckpointError(
                f"checkpoint {self.directory}: step {step} exists; nothing was overwritten"
            )
        for unfinished in sorted(set(self.manager.all_steps()) - set(existing)):
            self._remove_unfinished(unfinished, meta)  # or refuse another program's step
        if existing:
            earlier = self.meta(max(existing))
            for key in ("model", "implementation", "loop"):
                if earlier.get(key) != meta.get(key):
                    raise CheckpointError(
                        f"checkpoint {self.directory}: holds {key} {earlier.get(key)!r}, not "
                        f"{meta.get(key)!r}; save elsewhere (nothing was overwritten)"
                    )
        data = savable(tree)
        full = {**meta, "format": FORMAT, "step": step, "leaves": describe_leaves(data)}
        saved = self.manager.save(
            step,
            args=ocp.args.Composite(
                train=ocp.args.StandardSave(data), meta=ocp.args.JsonSave(full)
            ),
        )
        # The save is asynchronous: until it finishes only a temporary folder exists.
        self.manager.wait_until_finished()
        if not saved:  # orbax's save policy declined the step (it says so only by returning)
            raise CheckpointError(f"checkpoint {self.directory}: orbax skipped step {step}")
        folder = self.directory / str(step)
        digest = {"format": FORMAT, "files": _files(folder)}
        write_atomic(folder / DIGEST, json.dumps(digest, indent=1).encode())
        return folder

    def _remove_unfinished(self, step: int, meta: Mapping[str, Any]) -> None:
        """A step orbax finished but whose digest a kill prevented: ours, so removed."""
        folder = self.directory / str(step)
        try:
            restored = self.manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )
            ours = dict(restored.meta)
        except Exception:
            ours = {}
        same = ours.get("format") == FORMAT and all(
            ours.get(k) == meta.get(k) for k in ("model", "implementation", "loop")
        )
        if not same:
            raise CheckpointError(
                f"checkpoint {self.directory}: step {step} exists and is not this run's "
                "unfinished save; nothing was overwritten"
            )
        shutil.rmtree(folder)
        self.manager.reload()

    def meta(self, step: int | None = None) -> dict[str, Any]:
        """The metadata of `step` (default: the latest), checked to be one of ours."""
        step = self.latest() if step is None else step
        if step not in self.steps():
            raise CheckpointError(
                f"checkpoint {self.directory}: no complete step {step}; it has "
                f"{', '.join(map(str, self.steps())) or 'none'}"
            )
        self.verify(step)
        try:
            restored = self.manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )
            meta = dict(restored.meta)
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {self.directory}: step {step}'s metadata cannot be read "
                f"({_first_line(e)}); it is corrupted or truncated"
            ) from None
        if meta.get("format") != FORMAT:
            raise CheckpointError(
                f"checkpoint {self.directory}: step {step} was not written by state-rosetta "
                f"(format {meta.get('format')!r}, expected {FORMAT!r})"
            )
        if meta.get("step") != step:
            raise CheckpointError(
                f"checkpoint {self.directory}: the folder of step {step} holds the metadata "
                f"of step {meta.get('step')!r}"
            )
        if not isinstance(meta.get("leaves"), dict):
            raise CheckpointError(f"checkpoint {self.directory}: step {step} lists no leaves")
        return meta

    def leaves(self, step: int | None = None) -> dict[str, np.ndarray]:
        """Every saved leaf of `step` (default: the latest) by its dotted name, as saved: for
        reading a checkpoint into objects of another kind (a transplant)."""
        return _leaves_of(self, step)

    def restore(
        self,
        template: Any,
        step: int | None = None,
        *,
        expect: Mapping[str, Any] | None = None,
        strict: bool = True,
    ) -> Any:
        """Read step `step` (default: the latest) into the structure of `template`.

        **Arguments:**

        - `template`: freshly built objects of the same kind as those saved; only their
          shapes and dtypes are used (the abstract target), plus what is not an array.
        - `step`: which step (default: the latest complete one).
        - `expect`: metadata the checkpoint must carry (model, implementation, loop, ...).
        - `strict`: refuse a leaf whose shape or dtype differs from the target's (orbax
          would cast it silently), or that is missing or extra.

        Raises [`CheckpointError`][] naming the folder and what is wrong.
        """
        step = self.latest() if step is None else step
        meta = self.meta(step)
        for key, value in (expect or {}).items():
            if meta.get(key) != value:
                raise CheckpointError(
                    f"checkpoint {self.directory}: step {step} is of {key} {meta.get(key)!r}, "
                    f"expected {value!r}"
                )
        target = savable(template)
        if strict:
            _check_leaves(self.directory, step, meta["leaves"], describe_leaves(target))
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    train=ocp.args.StandardRestore(abstract(target, meta["leaves"]))
                ),
            )
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {self.directory}: step {step} cannot be read ({_first_line(e)}); "
                "it is corrupted or truncated"
            ) from None
        return restored_into(template, restored.train)


def _leaves_of(store: CheckpointStore, step: int | None) -> dict[str, np.ndarray]:
    step = store.latest() if step is None else step
    store.meta(step)  # one of ours, complete
    try:
        # No target: orbax gives plain dicts and lists, whose leaves keep their names.
        restored = store.manager.restore(
            step, args=ocp.args.Composite(train=ocp.args.StandardRestore())
        )
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {store.directory}: step {step} cannot be read ({_first_line(e)}); "
            "it is corrupted or truncated"
        ) from None
    return {k: np.asarray(v) for k, v in named_leaves(restored.train).items()}


def _check_leaves(
    directory: Path,
    step: int,
    saved: Mapping[str, Mapping[str, Any]],
    wanted: Mapping[str, Mapping[str, Any]],
) -> None:
    where = f"checkpoint {directory}: step {step}"
    missing = sorted(set(wanted) - set(saved))
    if missing:
        raise CheckpointError(f"{where} has no leaf {missing[0]!r}; it is of another model")
    extra = sorted(set(saved) - set(wanted))
    if extra:
        raise CheckpointError(f"{where} has a leaf {extra[0]!r} this model lacks")
    for name, want in wanted.items():
        got = saved[name]
        same_dtype = got["dtype"] == want["dtype"] or (
            # A Python number in the target (a fresh TrainState's step = 0) takes any integer
            # (or float) the saved run made of it.
            want["dtype"] in ("int", "float") and np.dtype(got["dtype"]).kind in "iuf"
        )
        if list(got["shape"]) != list(want["shape"]) or not same_dtype:
            raise CheckpointError(
                f"{where}: leaf {name!r} is {got['dtype']}{list(got['shape'])}, the target "
                f"{want['dtype']}{list(want['shape'])}"
            )
