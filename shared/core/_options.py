"""The generic options of one run: one record, which `CompareOptions` extends."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._harness import LOOPS
from ._parallel import Parallel
from ._tolerance import Tolerance, parse_tolerance

Progress = Callable[[str], None]
"""Called with a line of progress (a trajectory's name, a step) while a run trains."""

KEEP = ("auto", "trajectories", "summaries")
"""What a run keeps of its steps: every value while the run is small (`auto`), always
(`trajectories`), or only the per-step summaries (`summaries`)."""


@dataclass(frozen=True)
class RunOptions:
    """The generic options of one run (the model's own are in `values`).

    **Arguments:**

    - `loops`: which loops: `"harness"` (jitted generic step), `"native"` (the framework's
      own idiom), `"scan"` (all steps in one `lax.scan`).
    - `steps`, `batch`: `None` for the model's defaults.
    - `optimizer`, `lr`: the optax optimizer and its learning rate (`None`: the model's).
    - `seed`: seeds the data, the init and the per-step keys.
    - `mode`: one of the model's modes (`None`: its first).
    - `data`, `data_source`: the user's own data and where it came from.
    - `values`: the model's own options by key (missing ones take their defaults).
    - `reference`: the trajectory (`"impl/loop"`) or implementation (its harness run) to
      compare everything with (`None`: the spec's reference).
    - `tolerance`: judge every float32 pair by this tolerance (or its text: `"4ulp"`,
      `"1e-6"`) instead of the spec's.
    - `devices`, `parallel`: train data-parallel over this many devices, in this mode
      (`"shard_map"`, `"jit"`, `"unsynced"`), against the single-device run.
    - `lockstep`: also run every implementation's harness loop in lockstep with the
      reference's (see `_lockstep`); its verdict is the pair's.
    - `lockstep_every_step`: take the lockstep step even where the free-running step
      starts from the reference's own values (and so is the lockstep step): its whole cost,
      for the bench.
    - `keep`: one of `KEEP`.
    """

    loops: tuple[str, ...] = LOOPS
    steps: int | None = None
    batch: int | None = None
    optimizer: str = "sgd"
    lr: float | None = None
    seed: int = 0
    mode: str | None = None
    data: np.ndarray | None = field(default=None, compare=False)
    data_source: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None
    tolerance: Tolerance | str | None = None
    devices: int = 1
    parallel: str = "shard_map"
    lockstep: bool = True
    lockstep_every_step: bool = False
    keep: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.tolerance, str):
            object.__setattr__(self, "tolerance", parse_tolerance(self.tolerance))
        if self.keep not in KEEP:
            raise ValueError(f"keep: expected one of {', '.join(KEEP)}, got {self.keep!r}")
        if isinstance(self.devices, bool) or not isinstance(self.devices, int) or self.devices < 1:
            raise ValueError(f"--devices: expected at least 1, got {self.devices}")

    @property
    def judged_by(self) -> Tolerance | None:
        """The `--tolerance` that replaces the spec's, parsed."""
        assert not isinstance(self.tolerance, str)
        return self.tolerance

    @property
    def data_parallel(self) -> Parallel | None:
        """The data-parallel setup, or `None` on one device."""
        return None if self.devices == 1 else Parallel(self.devices, self.parallel)
