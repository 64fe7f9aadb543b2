"""Writing reports safely: atomically, with the permissions ordinary files get, only where a
regular file may go, and as strict JSON."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
"""How a non-finite float is written in JSON (strict JSON has no such numbers): the string
in the place of the number."""


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str | None:
    """What a file of `mode` is, when it is no regular file."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_writable(path: str | Path) -> None:
    """Check, before a run, that `write_atomic(path, ...)` can write `path` and replaces
    nothing it should not.

    `path` must be nothing yet, or a regular file (not a link, a folder, a device or a FIFO)
    that may be written (not read-only), in a folder where a file can be made. Raises
    `ValueError` naming the path and what is wrong; nothing is created or replaced.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {path}: no such directory {parent}")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror}") from None
    if mode is not None:
        kind = _kind(mode)
        if kind is not None:
            raise ValueError(
                f"cannot write {path}: it is {kind}, not a regular file; nothing was replaced"
            )
        if not mode & stat.S_IWUSR or not os.access(path, os.W_OK):
            raise ValueError(
                f"cannot write {path}: it is read-only (mode {stat.S_IMODE(mode):04o}); "
                "nothing was replaced"
            )
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".check")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(
            f"cannot write {path}: no file can be made in {parent} ({e.strerror})"
        ) from None


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    A crash or a kill never leaves a half-written file at `path`: it holds the old content or
    the new. The file gets the permissions `open()` would give it (0666 less the umask), not
    the 0600 of a temporary file. Something at `path` that is not a regular file (a folder,
    a link, a device, a FIFO) is never replaced: `ValueError`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            kind = _kind(os.lstat(path).st_mode)
        except FileNotFoundError:
            kind = None
        if kind is not None:
            raise ValueError(
                f"cannot write {path}: it is {kind}, not a regular file; nothing was replaced"
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict(value: Any) -> Any:
    """`value` (dicts, lists, numbers, strings) with every non-finite float replaced by its
    string in `NON_FINITE`, for a strict JSON writer."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def json_bytes(value: Any, *, indent: int | None = 1) -> bytes:
    """`value` as strict JSON (RFC 8259: no NaN or Infinity literals; see `strict`)."""
    return json.dumps(strict(value), indent=indent, allow_nan=False).encode()


def finite_or_named(value: Any) -> Any:
    """The inverse of `strict` for the places numbers go: `"NaN"`, `"Infinity"` and
    `"-Infinity"` back to floats, in nested lists and dicts; anything else as it is."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: finite_or_named(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_named(v) for v in value]
    return value


def private_folder(path: str | Path) -> Path | None:
    """`path` as a folder only this user can use: made with mode 0700, or already there, a
    folder (not a link), owned by this user, that no one else may write in (then closed to
    others' reading too).

    Returns `None`, after one line on stderr saying why, for a folder that fails the check
    (made beforehand by someone else, or open to others): the caller goes on without it.
    For the caches the tool keeps in the shared temporary directory, where anyone could have
    made the folder first and planted or replaced what is in it.
    """
    path = Path(path)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        _not_using(path, f"it cannot be made ({e.strerror})")
        return None
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        _not_using(path, f"it is {_kind(info.st_mode)}")
    elif info.st_uid != os.getuid():
        _not_using(path, f"it is owned by uid {info.st_uid}, not by this user ({os.getuid()})")
    elif stat.S_IMODE(info.st_mode) & 0o022:  # others could have replaced what is in it
        _not_using(path, f"others may write in it (mode {stat.S_IMODE(info.st_mode):04o})")
    else:
        if stat.S_IMODE(info.st_mode) & 0o077:  # ours, made by an older release: close it
            os.chmod(path, 0o700)
        return path
    return None


def _not_using(path: Path, why: str) -> None:
    import sys

    print(f"state-rosetta: warning: not using {path}: {why}; going on without it", file=sys.stderr)
