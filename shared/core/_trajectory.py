"""Trajectory records: the loss at every step, and params and state at steps 0..N."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._protocol import Canonical


@dataclass
class Trajectory:
    """One training run under canonical names.

    `loss[s - 1]` is the loss computed in step s (1-based); `params[name][s]` and
    `state[name][s]` are the values after step s, index 0 being the initial values. Values
    are kept per step (not stacked) because a model may change a state's shape during
    training.
    """

    loss: list[np.ndarray] = field(default_factory=list)
    params: dict[str, list[np.ndarray]] = field(default_factory=dict)
    state: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.loss)

    def record_initial(self, params: Canonical, state: Canonical) -> None:
        """Store the values before the first step."""
        if self.loss or self.params or self.state:
            raise RuntimeError("record_initial must come first, once")
        self.params = {k: [_host(v)] for k, v in params.items()}
        self.state = {k: [_host(v)] for k, v in state.items()}

    def record_step(self, loss: Any, params: Canonical, state: Canonical) -> None:
        """Store one step's loss and the params and state after it."""
        self.loss.append(_host(loss))
        for store, values in ((self.params, params), (self.state, state)):
            if set(store) != set(values):
                raise ValueError(
                    f"canonical names changed during training: {sorted(store)} -> {sorted(values)}"
                )
            for k, v in values.items():
                store[k].append(_host(v))

    def leaves_in_causal_order(self) -> Iterator[tuple[int, str, np.ndarray]]:
        """(step, leaf, value) in the order a training step computes them.

        Step 0 holds the initial state and params. In step s >= 1 the model first updates
        its state, then computes the output and loss, then the optimizer updates the params;
        so the first difference found names the leaf where two runs first part ways.
        """
        for name in sorted(self.state):
            yield 0, f"state.{name}", self.state[name][0]
        for name in sorted(self.params):
            yield 0, f"params.{name}", self.params[name][0]
        for s in range(1, self.steps + 1):
            for name in sorted(self.state):
                yield s, f"state.{name}", self.state[name][s]
            yield s, "loss", self.loss[s - 1]
            for name in sorted(self.params):
                yield s, f"params.{name}", self.params[name][s]

    def final(self) -> dict[str, np.ndarray]:
        """The last loss and the params and state after the last step."""
        out: dict[str, np.ndarray] = {"loss": self.loss[-1]} if self.loss else {}
        out.update({f"params.{k}": v[-1] for k, v in self.params.items()})
        out.update({f"state.{k}": v[-1] for k, v in self.state.items()})
        return out

    def to_json(self) -> dict[str, Any]:
        """The JSON contract's trajectory entry: floats at full precision, nested lists."""
        return {
            "loss": [float(v) for v in self.loss],
            "params": {k: [v.tolist() for v in vs] for k, vs in self.params.items()},
            "state": {k: [v.tolist() for v in vs] for k, vs in self.state.items()},
        }

    @classmethod
    def from_steps(cls, steps: Iterable[Mapping[str, Any]]) -> Trajectory:
        """Record a run given one step at a time, from step 0 (the initial values): each
        step maps `"params.NAME"`, `"state.NAME"` and, from step 1, `"loss"` to arrays."""
        trajectory = cls()
        for i, values in enumerate(steps):
            params = {k[7:]: v for k, v in values.items() if k.startswith("params.")}
            state = {k[6:]: v for k, v in values.items() if k.startswith("state.")}
            if i == 0:
                trajectory.record_initial(params, state)
            else:
                trajectory.record_step(values["loss"], params, state)
        return trajectory

    @classmethod
    def from_json(cls, data: Mapping[str, Any], dtype: Any = np.float32) -> Trajectory:
        """Read back a trajectory written by `to_json`, exactly, as `dtype` arrays."""
        return cls(
            loss=[np.asarray(v, dtype) for v in data["loss"]],
            params={k: [np.asarray(v, dtype) for v in vs] for k, vs in data["params"].items()},
            state={k: [np.asarray(v, dtype) for v in vs] for k, vs in data["state"].items()},
        )


def _host(value: Any) -> np.ndarray:
    # np.array copies: a record must not alias a buffer that a later step may donate. (It
    # reads a jax.Array through `__array__`: a seventh of `jax.device_get`'s 160 us a leaf.)
    return np.array(value)
