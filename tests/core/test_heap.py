"""Freed host buffers go back to the system (the streaming run does it after every step):
left in glibc's heaps, the gaps between buffers that outlive a step stay resident, and a
long run's memory grew with its steps."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from shared.core import release_freed

MIB = 2**20


def _resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_the_free_gaps_between_live_buffers_leave_the_resident_memory():
    if not release_freed():
        pytest.skip("the C library has no malloc_trim (not glibc)")
    # Freeing a mapped 8 MiB buffer raises glibc's mmap threshold past it: the 2 MiB buffers
    # after it come from the heap, as a run's per-step buffers do.
    big = np.ones(MIB, np.float64)
    del big
    buffers = [np.ones(MIB // 4, np.float64) for _ in range(32)]  # 2 MiB each, touched
    kept = buffers[1::2]  # every other one lives on: the freed ones cannot coalesce
    del buffers
    gc.collect()
    gaps = _resident()
    assert release_freed()
    freed = gaps - _resident()
    # 16 gaps of 2 MiB were resident: at least 3/4 of them go back (the rest: a chunk's
    # header page, or a gap merged into the heap's top and trimmed by free() already).
    assert freed >= 24 * MIB, f"only {freed / MIB:.1f} MiB of 32 MiB of gaps returned"
    assert all(k[0] == 1.0 for k in kept)
