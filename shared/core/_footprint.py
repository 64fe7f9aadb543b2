"""How much memory a comparison run will take, estimated before it starts.

One small formula, in one place, so that it can follow the engine. A small run keeps every
step of every leaf on the host (one NumPy array per leaf per step: steps x trajectories x
leaves); a run over `KEEP_VALUES` keeps, per trajectory, its values on the device and the
last few steps of them, and per pair a few statistics per leaf and step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30

PROCESS_BYTES = 512 * 2**20
"""The process itself, JAX and the frameworks imported (measured: the default
`state-rosetta compare`, every framework and loop of the default model, peaked at 450 MiB
RSS)."""
ARRAY_BYTES = 360
"""What one recorded value costs a trajectory beyond its data: the NumPy array object, its
list slot, its share of the comparison's stacked copies (measured: 200,000 steps of the
default model, 3 arrays per step, took 1,080 bytes per step more than 10 steps did)."""
STAT_BYTES = 6 * 8
"""A pair's statistics of one leaf at one step (its series row)."""
HELD_STEPS = 6
"""Copies of a trajectory's values a streaming run holds at once: its native params, state
and optimizer state (up to two moments), and the last three steps of canonical values."""
DEVICE_BYTES = 100 * 2**10
"""One forced CPU host device (measured: 2,048 devices took 213 MiB more than one)."""


@dataclass(frozen=True)
class Footprint:
    """A run's estimated memory in bytes, by what takes it.

    **Fields:** `data` (the batches, on the host and on the device), `trajectories` (what
    the run records and compares), `devices` (forced host devices and their copies of the
    state), `process` (the interpreter and the frameworks).
    """

    data: int
    trajectories: int
    devices: int
    process: int = PROCESS_BYTES

    @property
    def total(self) -> int:
        return self.data + self.trajectories + self.devices + self.process

    def describe(self) -> str:
        parts = ("data", "trajectories", "devices", "process")
        detail = ", ".join(f"{p} {getattr(self, p) / GIB:.3g} GiB" for p in parts)
        return f"about {self.total / GIB:.3g} GiB ({detail})"


def estimate_footprint(
    *,
    steps: int,
    trajectories: int,
    data_bytes_per_step: int,
    values_per_step: int,
    leaves: int,
    devices: int = 1,
    data_reused: bool = False,
    keep_values: int | None = None,
) -> Footprint:
    """The footprint of a run.

    **Arguments:**

    - `steps`: training steps; `trajectories`: how many are trained (implementations x
      loops, and the reference or oracle trained aside).
    - `data_bytes_per_step`: one step's batch, in bytes.
    - `values_per_step`, `leaves`: the canonical params and state of one implementation:
      how many numbers, in how many arrays.
    - `devices`: the devices the run is spread over.
    - `data_reused`: the model reuses one batch at every step (a broadcast view): the data
      take one step's bytes, not `steps` of them.
    - `keep_values`: above this many values in all (values x steps x trajectories) the run
      streams (`_stream_run.KEEP_VALUES`); `None`: every run keeps every step.
    """
    data = 2 * data_bytes_per_step * (1 if data_reused else steps)  # host and device copies
    kept = values_per_step * (steps + 1) * trajectories
    if keep_values is None or kept <= keep_values:
        per_step = leaves * ARRAY_BYTES + 4 * values_per_step
        loss = ARRAY_BYTES + 4
        recorded = trajectories * ((steps + 1) * per_step + steps * loss)
    else:
        held = trajectories * HELD_STEPS * 4 * values_per_step
        series = 2 * trajectories * (steps + 1) * leaves * 3 * STAT_BYTES  # + lockstep leaves
        recorded = held + series + trajectories * steps * (ARRAY_BYTES + 4)
    replicated = 4 * 4 * values_per_step  # params, state and up to two optimizer moments
    on_devices = devices * (DEVICE_BYTES + replicated) if devices > 1 else 0
    return Footprint(data=data, trajectories=recorded, devices=on_devices)


def machine_memory() -> int:
    """This machine's memory in bytes: its physical memory, or its cgroup's limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total
