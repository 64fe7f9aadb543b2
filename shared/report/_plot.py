"""The trajectories as a PNG: loss, a parameter, a state leaf, and the distance to the reference."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from shared.core import CompareResult, write_atomic


def plot(result: CompareResult, path: str | Path) -> None:
    """A PNG of the loss, element [0] of a parameter and of a state leaf per step, and each
    run's distance to the reference.

    The leaves drawn are the reference's first parameter and first state leaf by name (its
    second parameter when the model has no state).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    ref = result.trajectories[result.reference]
    leaves = [("params", k) for k in sorted(ref.params)]
    states = [("state", k) for k in sorted(ref.state)]
    shown = [*leaves[:1], *(states[:1] or leaves[1:2])]
    styles = ["-", "--", ":", "-."]
    for i, (name, traj) in enumerate(result.trajectories.items()):
        style: dict[str, Any] = {
            "linestyle": styles[i % len(styles)],
            "linewidth": 1.2,
            "label": name,
        }
        steps = np.arange(1, traj.steps + 1)
        axes[0, 0].plot(steps, np.asarray(traj.loss, np.float64), **style)
        for ax, (group_name, leaf) in zip((axes[0, 1], axes[1, 0]), shown, strict=False):
            group = getattr(traj, group_name)
            if leaf in group:
                values = [np.ravel(v)[0] for v in group[leaf]]
                ax.plot(np.arange(traj.steps + 1), values, **style)
        if name != result.reference:
            axes[1, 1].plot(np.arange(traj.steps + 1), _distance(traj, ref), **style)
    axes[0, 0].set(title="loss", xlabel="step", yscale="log")
    for ax, (group_name, leaf) in zip((axes[0, 1], axes[1, 0]), shown, strict=False):
        ax.set(title=f"{group_name}.{leaf}[0]", xlabel="step")
    axes[1, 1].set(title=f"max |difference| to {result.reference} (0 = bitwise)", xlabel="step")
    axes[1, 1].set_yscale("symlog", linthresh=1e-9)  # shows exact zeros and tiny gaps alike
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _distance(traj: Any, ref: Any) -> np.ndarray:
    """Per step, the largest |difference| over every leaf recorded after that step."""
    out = np.zeros(traj.steps + 1)
    for group in ("params", "state"):
        a_leaves, b_leaves = getattr(traj, group), getattr(ref, group)
        for name in a_leaves.keys() & b_leaves.keys():
            for s, (a, b) in enumerate(zip(a_leaves[name], b_leaves[name], strict=False)):
                if np.shape(a) == np.shape(b):
                    out[s] = max(out[s], float(np.max(np.abs(np.float64(a) - np.float64(b)))))
    for s, (a, b) in enumerate(zip(traj.loss, ref.loss, strict=False), start=1):
        out[s] = max(out[s], abs(float(a) - float(b)))
    return out
