"""Reading a saved run as hostile data: every type, count, shape and dtype checked, and only
the sidecar arrays the run names decompressed, each after its header says what it holds.

A run's JSON may come from anyone (`state-rosetta diff` compares files from two machines),
so nothing in it may crash the reader, exhaust the memory, or pass for agreement: a `ValueError`
names the file and the first thing that is wrong.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._files import finite_or_named
from ._footprint import machine_memory
from ._trajectory import Trajectory

SIDECAR_DTYPE = np.dtype(np.float32)
"""What `save_run` writes into a sidecar, and all a sidecar may hold."""


def read_json(path: Path) -> dict[str, Any]:
    """The run's JSON object, its top-level entries' types checked."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: cannot read a run's JSON: it is nested too deeply") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read a run's JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: not a state-rosetta run (its top level is {type(data).__name__}, "
            "expected an object)"
        )
    missing = [k for k in ("model", "config", "trajectories") if k not in data]
    if missing:
        raise ValueError(f"{path}: not a state-rosetta run (missing {', '.join(missing)})")
    for key, kind in (
        ("model", str),
        ("config", dict),
        ("trajectories", dict),
        ("versions", dict),
        ("errors", dict),
        ("comparison", dict),
    ):
        if key in data and not isinstance(data[key], kind):
            raise ValueError(
                f"{path}: its {key!r} is {type(data[key]).__name__}, expected "
                f"{'a string' if kind is str else 'an object'}"
            )
    return data


class Sidecar:
    """The run's `.npz` sidecar, read one named array at a time (never all of it)."""

    def __init__(self, path: Path, name: Any) -> None:
        self.run = path
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"{path}: its sidecar {name!r} is not a file name beside it")
        self.path = path.with_name(name)
        try:
            self.zip: zipfile.ZipFile | None = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile, ValueError) as e:
            raise ValueError(f"{path}: cannot read its sidecar {self.path}: {e}") from None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
            self.zip = None

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """The shape and dtype the sidecar's array `key` declares, read from its header."""
        assert self.zip is not None
        try:
            with self.zip.open(f"{key}.npy") as f:
                version = np.lib.format.read_magic(f)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read(f)
        except KeyError:
            raise ValueError(f"{self.run}: sidecar has no array {key!r}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise ValueError(
                f"{self.run}: its sidecar's array {key!r} cannot be read: {e}"
            ) from None
        return tuple(shape), dtype

    def array(self, key: str) -> np.ndarray:
        assert self.zip is not None
        try:
            with self.zip.open(f"{key}.npy") as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise ValueError(
                f"{self.run}: its sidecar's array {key!r} is corrupted or truncated: {e}"
            ) from None


def _reference(path: Path, where: str, value: Mapping[str, Any]) -> tuple[str, tuple[int, ...]]:
    key, shape = value.get("sidecar"), value.get("shape")
    if (
        not isinstance(key, str)
        or not isinstance(shape, list)
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        or not shape
    ):
        raise ValueError(f"{path}: {where}: a sidecar reference needs a key and a shape")
    return key, tuple(shape)


def _floats(path: Path, where: str, value: Any) -> np.ndarray:
    try:
        array = np.asarray(finite_or_named(value))
    except (ValueError, TypeError, RecursionError):
        array = np.asarray(None)
    if array.dtype.kind not in "iuf":  # strings, booleans, ragged lists
        raise ValueError(f"{path}: {where}: expected numbers (nested lists of them)")
    return array.astype(np.float32)


def read_trajectories(path: Path, data: Mapping[str, Any]) -> dict[str, Trajectory]:
    """The run's trajectories as float32 arrays, every entry checked."""
    sidecar = Sidecar(path, data["sidecar"]) if data.get("sidecar") else None
    try:
        return _trajectories(path, data["trajectories"], sidecar)
    finally:
        if sidecar is not None:
            sidecar.close()


def _trajectories(
    path: Path, entries: Mapping[str, Any], sidecar: Sidecar | None
) -> dict[str, Trajectory]:
    references: dict[str, tuple[int, ...]] = {}
    for key, t in entries.items():
        if not isinstance(t, dict):
            raise ValueError(
                f"{path}: trajectory {key!r} is {type(t).__name__}, expected an object"
            )
        for part, kind in (("loss", list), ("params", dict), ("state", dict)):
            if not isinstance(t.get(part), kind):
                raise ValueError(
                    f"{path}: trajectory {key!r} has no {part} "
                    f"({'a list' if kind is list else 'an object'} of its steps)"
                )
        for group in ("params", "state"):
            for name, v in t[group].items():
                if isinstance(v, dict):
                    ref, shape = _reference(path, f"{key} {group}.{name}", v)
                    references[ref] = shape
    _check_sidecar(path, references, sidecar)
    arrays = {ref: sidecar.array(ref) for ref in references} if sidecar else {}
    out = {}
    for key, t in entries.items():
        loss = [_floats(path, f"{key} loss", v) for v in t["loss"]]
        groups: dict[str, dict[str, list[np.ndarray]]] = {}
        for group in ("params", "state"):
            groups[group] = {}
            for name, v in t[group].items():
                where = f"{key} {group}.{name}"
                if isinstance(v, dict):
                    steps = list(arrays[_reference(path, where, v)[0]])
                elif isinstance(v, list):
                    steps = [_floats(path, where, s) for s in v]
                else:
                    raise ValueError(f"{path}: {where} is {type(v).__name__}, expected a list")
                if len(steps) != len(loss) + 1:
                    raise ValueError(
                        f"{path}: {where} has {len(steps)} values for {len(loss)} losses; "
                        "expected one more (the initial value, then one per step)"
                    )
                groups[group][name] = steps
        out[key] = Trajectory(loss=loss, params=groups["params"], state=groups["state"])
    return out


def _check_sidecar(
    path: Path, references: Mapping[str, tuple[int, ...]], sidecar: Sidecar | None
) -> None:
    """Every referenced array: there, of its declared shape, float32; and all of them fit."""
    if not references:
        return
    if sidecar is None:
        raise ValueError(f"{path}: names sidecar arrays but no sidecar")
    total = 0
    for ref, shape in references.items():
        got, dtype = sidecar.header(ref)
        if dtype != SIDECAR_DTYPE:
            what = "complex data" if dtype.kind == "c" else f"dtype {dtype}"
            raise ValueError(
                f"{path}: its sidecar's array {ref!r} holds {what}; expected {SIDECAR_DTYPE}"
            )
        if got != shape:
            raise ValueError(
                f"{path}: its sidecar's array {ref!r} has shape {list(got)}, the run declares "
                f"{list(shape)}"
            )
        total += int(np.prod(shape, dtype=np.float64)) * SIDECAR_DTYPE.itemsize
    if total > machine_memory() // 2:  # before a byte is decompressed
        raise ValueError(
            f"{path}: its sidecar's arrays would take {total / 2**30:.3g} GiB, more than half "
            "this machine's memory"
        )
