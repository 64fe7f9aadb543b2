"""Training every trajectory side by side, one step at a time, comparing as it goes.

Memory stays O(model size x trajectories): each step's values are summarised (on the device)
and let go, except in runs small enough to keep every step (`record`), whose trajectories
the JSON, `diff` and the plots use, and a window of full values around each pair's first
divergence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from ._heap import release_freed
from ._lockstep import Lockstep
from ._plugin import contained  # the user's code may call sys.exit()
from ._protocol import Batch, Implementation
from ._runners import split
from ._stream import PairStream
from ._trajectory import Trajectory

KEEP_VALUES = 20_000_000
"""The most values (params and state, every step of every trajectory) a run keeps whole;
a larger run keeps summaries (80 MB of float32 at the limit)."""

WINDOW = 1
"""Steps of full values kept on each side of a pair's first divergence, in a large run."""


@dataclass
class Track:
    """One trajectory being trained: its key, implementation and runner, what it recorded,
    its last values (on the device), and the error that stopped it, if any."""

    key: str
    impl: Implementation
    runner: Any
    recorded: Trajectory | None = None
    losses: list[Any] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    recent: deque[tuple[int, dict[str, Any]]] = field(default_factory=lambda: deque(maxlen=3))

    @property
    def alive(self) -> bool:
        return self.error is None

    def final(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The canonical (params, state) after the last step."""
        return split(self.last)


@dataclass
class Window:
    """Full values of both runs of a pair at the steps around its first divergence."""

    steps: list[int]
    a: list[dict[str, np.ndarray]]
    b: list[dict[str, np.ndarray]]


@dataclass
class SideBySide:
    """What training side by side leaves besides the tracks: the windows around each
    pair's first divergence (runs that do not record), and the oracle's recorded run."""

    windows: dict[tuple[str, str], Window] = field(default_factory=dict)
    oracle: Trajectory | None = None
    oracle_losses: list[Any] = field(default_factory=list)


def train_side_by_side(
    tracks: Sequence[Track],
    batches: Sequence[Batch],
    keys: Sequence[jax.Array | None],
    streams: Mapping[tuple[str, str], PairStream],
    *,
    lockstep: Lockstep | None = None,
    oracle: tuple[str, Iterator[Mapping[str, Any]]] | None = None,
    record: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SideBySide:
    """Train every track one step at a time and feed each pair's stream as it goes.

    **Arguments:**

    - `tracks`: the trajectories to train.
    - `batches`, `keys`: one per step (`None` keys for a deterministic model).
    - `streams`: by `(a, b)` trajectory keys, the comparison of `a` with the reference `b`.
    - `lockstep`: runs each step in lockstep before the free-running runners take it.
    - `oracle`: `(key, steps)`, a host run (the float64 oracle) that yields each step's
      values from step 0 on; its pairs are compared on the host.
    - `record`: keep every step of every track (`Track.recorded`).
    - `progress`: called with a line before each step.

    A track whose training raises stops there (`Track.error`); its pairs are dropped.
    """
    by_key = {t.key: t for t in tracks}
    oracle_key, oracle_steps = oracle if oracle is not None else (None, iter(()))
    out = SideBySide(oracle=Trajectory() if record and oracle is not None else None)
    for track in tracks:
        track.last = track.runner.initial()
        if record:
            track.recorded = Trajectory()
            track.recorded.record_initial(*split(track.last))
        track.recent.append((0, track.last))
    values: dict[str, Any] = {t.key: t.last for t in tracks}
    if oracle_key is not None:
        values[oracle_key] = next(oracle_steps)
        if out.oracle is not None:
            out.oracle.record_initial(*split(values[oracle_key]))
    _push(streams, 0, values)
    for step, (batch, key) in enumerate(zip(batches, keys, strict=True), start=1):
        if progress:
            progress(f"step {step} of {len(batches)}")
        if lockstep is not None:
            lockstep.step(batch, key)
        for track in tracks:
            if track.alive:
                _advance(track, step, batch, key, record)
                if not track.alive and lockstep is not None:
                    lockstep.drop(track.key)
        values = {t.key: t.last for t in tracks if t.alive}
        if lockstep is not None:
            reference = lockstep.reference_key
            for name in lockstep.delegated():
                if name in values and reference in values:
                    lockstep.judge_free(name, values[name], values[reference])
        if oracle_key is not None:
            values[oracle_key] = next(oracle_steps)
            out.oracle_losses.append(values[oracle_key]["loss"])
            if out.oracle is not None:
                out.oracle.record_step(values[oracle_key]["loss"], *split(values[oracle_key]))
        _push(streams, step, values)
        if not record:
            _keep_windows(streams, by_key, out.windows)
        del values  # this step's values, but for what the tracks and windows hold
        # The step's freed host buffers, back to the system: left in the C heap, the gaps
        # between the buffers that outlive a step stay resident and add up over the steps.
        release_freed()
    return out


def _advance(track: Track, step: int, batch: Batch, key: jax.Array | None, record: bool) -> None:
    try:
        with contained(f"training {track.key}"):
            track.runner.advance(batch, key)
            track.last = track.runner.values()
        track.losses.append(track.last["loss"])  # a scalar: kept on the device until the end
        if record and track.recorded is not None:
            params, state = split(track.last)
            track.recorded.record_step(track.last["loss"], params, state)
        track.recent.append((step, track.last))
    except Exception as e:  # reported, not raised: a failing framework is a finding
        track.error = e


def _push(
    streams: Mapping[tuple[str, str], PairStream], step: int, values: Mapping[str, Any]
) -> None:
    for (a, b), stream in streams.items():
        if a in values and b in values:
            stream.push(step, values[a], values[b])


def _keep_windows(
    streams: Mapping[tuple[str, str], PairStream],
    tracks: Mapping[str, Track],
    windows: dict[tuple[str, str], Window],
) -> None:
    """Copy the values around a pair's first divergence to the host, once, while the
    tracks still hold them (a divergence is read one step after its step is pushed)."""
    for pair, stream in streams.items():
        div = stream.first_divergence
        if div is None or pair in windows or pair[0] not in tracks or pair[1] not in tracks:
            continue
        a, b = tracks[pair[0]], tracks[pair[1]]
        wanted = range(div.step - WINDOW, div.step + WINDOW + 1)
        held_a, held_b = dict(a.recent), dict(b.recent)
        steps = [s for s in wanted if s in held_a and s in held_b]
        windows[pair] = Window(
            steps,
            [_host(held_a[s]) for s in steps],
            [_host(held_b[s]) for s in steps],
        )


def _host(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in values.items()}
