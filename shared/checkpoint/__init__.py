"""Checkpoints with orbax: save, resume bit-exactly, audit, transplant between frameworks."""

from ..core import named_leaves
from ._audit import KINDS, Finding, audit
from ._case import Built, Case
from ._errors import CheckpointError
from ._resume import (
    Resumed,
    Saved,
    continue_from,
    joined,
    read_trajectories,
    resume,
    save_case,
)
from ._store import DIGEST, FORMAT, CheckpointStore
from ._trainers import HarnessTrainer, NativeTrainer, ScanTrainer, Trainer, make_trainer
from ._trees import abstract, restored_into, savable

__all__ = [
    "DIGEST",
    "FORMAT",
    "KINDS",
    "Built",
    "Case",
    "CheckpointError",
    "CheckpointStore",
    "Finding",
    "HarnessTrainer",
    "NativeTrainer",
    "Resumed",
    "Saved",
    "ScanTrainer",
    "Trainer",
    "abstract",
    "audit",
    "continue_from",
    "joined",
    "make_trainer",
    "named_leaves",
    "read_trajectories",
    "restored_into",
    "resume",
    "savable",
    "save_case",
]
