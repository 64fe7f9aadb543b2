"""Handing the C heap's freed memory back to the system between steps (glibc's `malloc_trim`).

A step of a large run allocates and frees many buffers of the model's size on the host:
XLA's outputs and temporaries (in its worker threads' arenas), the batch's copy for each
call, a float64 oracle's arrays and their host comparison (in the main arena). Once one
such buffer has been freed, glibc raises its mmap threshold to that size (up to 32 MiB),
so the next ones come from its heaps, where they interleave with the buffers that live
across steps. The free chunks between those stay resident, and with every step a few more
of them do: the streaming comparison's resident memory crept up with the steps although it
holds nothing per step (at 300,000 features, 490 to 545 MiB over 300 steps, 150 to 200 MiB
of it free chunks in the heaps, by `malloc_info`). `malloc_trim(0)` returns the free pages
of every arena; called once a step it costs a fraction of a millisecond on a small heap.
Elsewhere than on glibc it is not there, and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl, Windows)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed() -> bool:
    """Return the C heap's free pages to the system; `False` where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
