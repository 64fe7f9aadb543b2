"""Checkpoints with orbax: save, resume bit-exactly, audit, transplant and convert between
frameworks."""

from ..core import named_leaves
from ._audit import KINDS, Finding, audit
from ._case import Built, Case
from ._convert import Converted, check_converted, convert
from ._errors import CheckpointError
from ._layouts import LAYOUTS, NativeLayout, OptaxDictLayout, layout_for
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
    "LAYOUTS",
    "Built",
    "Case",
    "CheckpointError",
    "CheckpointStore",
    "Converted",
    "Finding",
    "HarnessTrainer",
    "NativeLayout",
    "NativeTrainer",
    "OptaxDictLayout",
    "Resumed",
    "Saved",
    "ScanTrainer",
    "Trainer",
    "abstract",
    "audit",
    "check_converted",
    "continue_from",
    "convert",
    "joined",
    "layout_for",
    "make_trainer",
    "named_leaves",
    "read_trajectories",
    "restored_into",
    "resume",
    "savable",
    "save_case",
]
