"""The trajectories as a PNG: loss, params and state summaries, held-out metrics, and how far
each run is from the reference (absolute, and in float32 ULPs per step as a heat map)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.core import CompareResult, Trajectory, ulp_distance, write_atomic

LOOP_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
"""Line styles by loop, in order of first appearance (harness, native, scan, ...)."""


@dataclass(frozen=True)
class Style:
    """How one trajectory is drawn: its framework's colour and its loop's line style."""

    framework: str
    loop: str
    color: str
    linestyle: Any


def trajectory_styles(keys: Iterable[str]) -> dict[str, Style]:
    """Trajectory key (`"framework/loop"`) -> its style: colour by framework, line style by
    loop, so that no two trajectories share both (raises if there are too many of either)."""
    import matplotlib

    colors = [matplotlib.colormaps["tab10"](i) for i in range(10)]
    frameworks: dict[str, str] = {}
    loops: dict[str, Any] = {}
    out = {}
    for key in keys:
        framework, _, loop = key.partition("/")
        if framework not in frameworks:
            if len(frameworks) == len(colors):
                raise ValueError(f"plot: more than {len(colors)} frameworks to colour")
            frameworks[framework] = matplotlib.colors.to_hex(colors[len(frameworks)])
        if loop not in loops:
            if len(loops) == len(LOOP_STYLES):
                raise ValueError(f"plot: more than {len(LOOP_STYLES)} loops to draw apart")
            loops[loop] = LOOP_STYLES[len(loops)]
        out[key] = Style(framework, loop, frameworks[framework], loops[loop])
    return out


def _global_norm(values: Sequence[dict[str, list[np.ndarray]]], steps: int) -> np.ndarray:
    """Per step, the L2 norm over every element of every leaf in `values`."""
    total = np.zeros(steps + 1)
    for group in values:
        for leaf in group.values():
            for s, v in enumerate(leaf[: steps + 1]):
                total[s] += float(np.sum(np.square(np.asarray(v, np.float64))))
    return np.sqrt(total)


def ulp_map(result: CompareResult) -> tuple[list[str], np.ndarray]:
    """Rows (every trajectory but the reference) and, per row and step 1..N, the largest
    float32 ULP distance to the reference over the loss and every leaf after that step."""
    ref = result.trajectories[result.reference]
    rows = [k for k in result.trajectories if k != result.reference]
    out = np.zeros((len(rows), ref.steps))
    for r, key in enumerate(rows):
        traj = result.trajectories[key]
        for s in range(1, min(traj.steps, ref.steps) + 1):
            worst = float(ulp_distance(traj.loss[s - 1], ref.loss[s - 1]))
            for group in ("params", "state"):
                mine, theirs = getattr(traj, group), getattr(ref, group)
                for name in mine.keys() & theirs.keys():
                    a, b = mine[name][s], theirs[name][s]
                    if np.shape(a) == np.shape(b) and np.size(a):
                        worst = max(worst, float(np.max(ulp_distance(a, b))))
            out[r, s - 1] = worst
    return rows, out


def _plain_log_ticks(axis: Any) -> None:
    """Ticks at 1, 2 and 5 times each power of ten, labelled as plain numbers (`20`, `0.5`),
    not `2x10^1`: a log axis that spans less than a decade still gets labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def figure(result: CompareResult) -> Any:
    """The figure `plot` saves: one panel per thing the run has (no empty panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    ref = result.trajectories[result.reference]
    styles = trajectory_styles(result.trajectories)
    panels = ["loss", "params"]
    if ref.state:
        panels.append("state")
    if result.evals:
        panels.append("eval")
    if len(result.trajectories) > 1:
        panels += ["distance", "ulp"]
    columns = 3 if len(panels) > 4 else 2
    rows = -(-len(panels) // columns)
    fig, grid = plt.subplots(
        rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False, layout="constrained"
    )
    axes = dict(zip(panels, grid.flat, strict=False))
    for spare in list(grid.flat)[len(panels) :]:
        spare.remove()
    for key, traj in result.trajectories.items():
        st = styles[key]
        line = {"color": st.color, "linestyle": st.linestyle, "linewidth": 1.3}
        steps = np.arange(traj.steps + 1)
        axes["loss"].plot(steps[1:], np.asarray(traj.loss, np.float64), **line)
        axes["params"].plot(steps, _global_norm([traj.params], traj.steps), **line)
        if "state" in axes:
            axes["state"].plot(steps, _global_norm([traj.state], traj.steps), **line)
        if "distance" in axes and key != result.reference:
            axes["distance"].plot(steps, _distance(traj, ref), **line)
    axes["loss"].set(title="training loss", xlabel="step", ylabel="loss", yscale="log")
    _plain_log_ticks(axes["loss"].yaxis)
    axes["params"].set(
        title=f"params: global L2 norm ({len(ref.params)} leaf{'s' * (len(ref.params) != 1)})",
        xlabel="step",
        ylabel="norm",
    )
    if "state" in axes:
        names = ", ".join(sorted(ref.state)[:3]) + (", ..." if len(ref.state) > 3 else "")
        axes["state"].set(title=f"state: global L2 norm ({names})", xlabel="step", ylabel="norm")
    if "eval" in axes:
        _eval_panel(axes["eval"], result, styles)
    if "distance" in axes:
        axes["distance"].set(
            title=f"max |difference| to {result.reference}",
            xlabel="step",
            ylabel="max |difference| (0 = bitwise)",
        )
        axes["distance"].set_yscale("symlog", linthresh=1e-9)  # exact zeros and tiny gaps
        axes["distance"].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        _ulp_panel(fig, axes["ulp"], result)
    by_framework = {s.framework: s.color for s in styles.values()}
    by_loop = {s.loop: s.linestyle for s in styles.values()}
    fig.legend(
        handles=[Line2D([], [], color=c, linewidth=2, label=f) for f, c in by_framework.items()],
        title="framework (colour)",
        loc="outside right upper",
        fontsize="small",
    )
    fig.legend(
        handles=[
            Line2D([], [], color="black", linestyle=ls, linewidth=1.3, label=loop)
            for loop, ls in by_loop.items()
        ],
        title="loop (line style)",
        loc="outside right lower",
        fontsize="small",
    )
    return fig


def _eval_panel(ax: Any, result: CompareResult, styles: dict[str, Style]) -> None:
    """Held-out accuracy (or the first metric) after the last step, one bar per trajectory."""
    metrics = next(iter(result.evals.values()))
    metric = "accuracy" if "accuracy" in metrics else next(iter(metrics))
    keys = [k for k in result.trajectories if metric in result.evals.get(k, {})]
    values = [result.evals[k][metric] for k in keys]
    ax.barh(range(len(keys)), values, color=[styles[k].color for k in keys])
    ax.set_yticks(range(len(keys)), keys, fontsize="x-small")
    ax.invert_yaxis()
    low = min(values)
    ax.set_xlim(max(0.0, low - 0.05 * max(abs(low), 1e-3)), max(values) * 1.002 + 1e-12)
    ax.set(title=f"held-out {metric} after the last step", xlabel=metric)


def _ulp_panel(fig: Any, ax: Any, result: CompareResult) -> None:
    """The ULP heat map: a row per trajectory, a column per step, white where bitwise."""
    import matplotlib
    from matplotlib.colors import LogNorm

    keys, ulps = ulp_map(result)
    # exactly equal: 0 ULP, masked out of the log scale and drawn white
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    shown = np.ma.masked_less_equal(ulps, 0)
    top = max(float(np.max(ulps)), 2.0) if ulps.size else 2.0
    image = ax.imshow(
        shown,
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        norm=LogNorm(vmin=1, vmax=top),
        extent=(0.5, ulps.shape[1] + 0.5, len(keys) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(keys)), keys, fontsize="x-small")
    ax.set(title=f"float32 ULPs to {result.reference} (white: bitwise)", xlabel="step")
    bar = fig.colorbar(image, ax=ax, label="max ULP over loss and leaves")
    _plain_log_ticks(bar.ax.yaxis)


def plot(result: CompareResult, path: str | Path) -> None:
    """Save the run's figure (see [`figure`][]) as a PNG, atomically."""
    import matplotlib.pyplot as plt

    fig = figure(result)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _distance(traj: Trajectory, ref: Trajectory) -> np.ndarray:
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
