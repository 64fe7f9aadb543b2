"""The one error of the checkpoint package."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, incomplete, corrupted, or not this run's.

    The command line exits 2 with its message, which names the folder and what is wrong.
    """
