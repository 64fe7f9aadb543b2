"""One writer per checkpoint folder: an OS lock on the folder itself, taken before orbax is
called, and a writability check that fails at once (orbax, given a folder it cannot write,
waits about 300 s for a directory-creation signal before it fails).

The lock is `flock` on the folder's own descriptor: nothing is written into the folder for
it (a folder of another run stays byte for byte as it was), and the kernel releases it when
its holder ends, however it ends (a killed writer leaves no stale lock). A second writer
is refused at once, with the holder's process id and command line where Linux's
`/proc/locks` tells them.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from ._errors import CheckpointError


def writable_folder(directory: Path) -> None:
    """Make `directory` (and its parents) if needed, and check that a file can be made in
    it; a [`CheckpointError`][] at once otherwise."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".state-rosetta-", suffix=".check")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CheckpointError(
            f"checkpoint {directory}: cannot write into it ({e.strerror}); nothing was written"
        ) from None


class FolderLock:
    """An exclusive lock on `directory` for writing, held until `release`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(self._fd)
            self.release()
            raise CheckpointError(
                f"checkpoint {directory}: another writer holds it ({holder}); nothing was "
                "written (one save at a time per folder)"
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the lock
            self._fd = None


def _holder(fd: int) -> str:
    """The process that holds the `flock` on `fd`'s file, as Linux's /proc/locks names it."""
    info = os.fstat(fd)
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # a waiter, or another kind of lock
        if fields[5] == wanted:
            pid = fields[4]
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                command = " ".join(a.decode(errors="replace") for a in raw.split(b"\0") if a)
            except OSError:
                command = ""
            return f"process {pid}" + (f": {command}" if command else "")
    return "another process"
