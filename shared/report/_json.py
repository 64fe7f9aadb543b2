"""Writing a comparison run as JSON (the documented contract), atomically."""

from __future__ import annotations

from pathlib import Path

from shared.core import CompareResult, save_run


def write_json(result: CompareResult, path: str | Path) -> list[Path]:
    """Write the run (and its array sidecar, when large); return the paths written.

    Every float is exact (the shortest text that reads back as the same float32); a crash
    never leaves a half-written file.
    """
    return save_run(
        result.to_json(arrays=False), path, result.trajectories, extra=result.summary_arrays()
    )
