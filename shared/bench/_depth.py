"""`bench --depth`: how each path's step time grows with the number of layers.

A straight line through the median step times against the depth L gives each path's cost
per layer (its slope) and its fixed cost (its intercept). The spread of the slope is shown
two ways: the slopes of the same fit through the p10 and through the p90 times, and the
ordinary least-squares standard error of the median fit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from ..core import write_atomic
from ._suite import Row


@dataclass(frozen=True)
class DepthFit:
    """One path's step time against depth, fitted as `intercept + per_layer * L`.

    **Fields:**

    - `model`, `size`, `impl`, `path`: which path, at which width (`"tiny"`, `"large"`).
    - `depths`: the depths measured; `ratios`: its median over the baseline's at each.
    - `per_layer_us`: the slope through the median times, in microseconds per layer.
    - `per_layer_us_p10`, `per_layer_us_p90`: the slopes through the p10 and p90 times.
    - `stderr_us`: the slope's standard error (NaN with fewer than three depths).
    - `intercept_us`: the fitted time of a step with no layers.
    - `per_leaf_us`: the slope over the leaves (params and state) each layer adds.
    """

    model: str
    size: str
    impl: str
    path: str
    depths: tuple[int, ...]
    ratios: tuple[float, ...]
    per_layer_us: float
    per_layer_us_p10: float
    per_layer_us_p90: float
    stderr_us: float
    intercept_us: float
    per_leaf_us: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _slope(depths: np.ndarray, times_us: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, the slope's standard error) of a least-squares line."""
    slope, intercept = np.polyfit(depths, times_us, 1)
    n = len(depths)
    if n < 3:
        return float(slope), float(intercept), float("nan")
    residual = times_us - (slope * depths + intercept)
    spread = np.sum((depths - depths.mean()) ** 2)
    return float(slope), float(intercept), float(np.sqrt(residual @ residual / (n - 2) / spread))


def fit_depths(rows: Sequence[Row]) -> list[DepthFit]:
    """One fit per (model, size, implementation, path) measured at two depths or more."""
    groups: dict[tuple[str, str, str, str], list[Row]] = {}
    for r in rows:
        if r.depth is not None and r.impl != "-":
            groups.setdefault((r.model, r.size, r.impl, r.path), []).append(r)
    fits = []
    for (model, size, impl, path), mine in groups.items():
        mine = sorted(mine, key=lambda r: r.depth or 0)
        if len(mine) < 2:
            continue
        depths = np.array([r.depth for r in mine], float)
        slope, intercept, stderr = _slope(depths, np.array([r.step_s_median for r in mine]) * 1e6)
        p10, _, _ = _slope(depths, np.array([r.step_s_p10 for r in mine]) * 1e6)
        p90, _, _ = _slope(depths, np.array([r.step_s_p90 for r in mine]) * 1e6)
        per_leaf = None
        if all(r.leaves is not None for r in mine):
            leaves_per_layer = np.polyfit(depths, [float(r.leaves or 0) for r in mine], 1)[0]
            per_leaf = slope / leaves_per_layer if leaves_per_layer > 0 else None
        fits.append(
            DepthFit(
                model,
                size,
                impl,
                path,
                tuple(int(d) for d in depths),
                tuple(r.ratio for r in mine),
                slope,
                p10,
                p90,
                stderr,
                intercept,
                per_leaf,
            )
        )
    return fits


def depth_table(fits: Sequence[DepthFit]) -> Table:
    """Per path: the ratio to the baseline at each depth, and the fitted cost per layer."""
    depths = sorted({d for f in fits for d in f.depths})
    t = Table(
        title="step time against depth L: ratio to the baseline at each L, and the linear fit",
        title_justify="left",
    )
    for column in ("model", "width", "impl", "path"):
        t.add_column(column)
    for d in depths:
        t.add_column(f"x base L={d}", justify="right")
    for column in ("us/layer", "p10-p90 fit", "+-se", "us/leaf", "us at L=0"):
        t.add_column(column, justify="right")
    for f in fits:
        by_depth = dict(zip(f.depths, f.ratios, strict=True))
        t.add_row(
            f.model,
            f.size,
            f.impl,
            f.path,
            *(f"{by_depth[d]:.2f}" if d in by_depth else "-" for d in depths),
            f"{f.per_layer_us:.2f}",
            f"{f.per_layer_us_p10:.2f}-{f.per_layer_us_p90:.2f}",
            "-" if np.isnan(f.stderr_us) else f"{f.stderr_us:.2f}",
            "-" if f.per_leaf_us is None else f"{f.per_leaf_us:.2f}",
            f"{f.intercept_us:.1f}",
        )
    return t


_STYLES: tuple[Any, ...] = ("-", "--", ":", "-.")  # matplotlib types them as Literals
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def plot_depths(rows: Sequence[Row], path: Path) -> None:
    """Time per step against L: a row of panels per width, a panel per framework.

    Each panel draws the framework's paths (one line style and marker each, the same in
    every panel) with p10-p90 error bars, and the baseline in grey for reference.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    rows = [r for r in rows if r.depth is not None and r.impl != "-"]
    sizes = list(dict.fromkeys(r.size for r in rows))
    impls = list(dict.fromkeys(r.impl for r in rows))
    paths = list(dict.fromkeys(r.path for r in rows))
    baseline = rows[0].baseline.split("/", 1) if rows else ["", ""]
    # A distinct (line style, marker) pair per path: 4 x 8 pairs before any repeats.
    pairs = [(s, m) for m in _MARKERS for s in _STYLES]
    pairs.sort(key=lambda pair: (_MARKERS.index(pair[1]) - _STYLES.index(pair[0])) % 8)
    style = {p: pairs[i % len(pairs)] for i, p in enumerate(paths)}
    fig, axes = plt.subplots(
        len(sizes),
        len(impls),
        figsize=(3.2 * len(impls), 3.4 * len(sizes) + 0.8),
        sharey="row",
        squeeze=False,
        constrained_layout=True,
    )
    depths = sorted({r.depth or 0 for r in rows})
    for i, size in enumerate(sizes):
        shape = next(r.shape for r in rows if r.size == size).split(" ", 1)[-1]
        for j, impl in enumerate(impls):
            ax = axes[i][j]
            for p in paths:
                draws = [(impl, f"C{j}")]
                if impl != baseline[0] and p == baseline[1]:
                    draws.append((baseline[0], "0.6"))  # the baseline, for reference
                for who, colour in draws:
                    mine = sorted(
                        (r for r in rows if (r.size, r.impl, r.path) == (size, who, p)),
                        key=lambda r: r.depth or 0,
                    )
                    if not mine:
                        continue
                    x = [r.depth for r in mine]
                    y = np.array([r.step_s_median for r in mine]) * 1e6
                    low = y - np.array([r.step_s_p10 for r in mine]) * 1e6
                    high = np.array([r.step_s_p90 for r in mine]) * 1e6 - y
                    ax.errorbar(
                        x,
                        y,
                        yerr=[np.maximum(low, 0), np.maximum(high, 0)],
                        color=colour,
                        linestyle=style[p][0],
                        marker=style[p][1],
                        markersize=4,
                        capsize=2,
                        label=f"{who}/{p}",
                    )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(FixedLocator(depths))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([str(d) for d in depths])
            plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            low, high = ax.get_ylim()
            # Under a decade a log axis has one major tick or none: label the minor ones too.
            ax.yaxis.set_minor_formatter(plain if high / low < 10 else NullFormatter())
            ax.set_title(f"{impl}, {shape}", fontsize="medium")
            ax.set_xlabel("layers L")
            if j == 0:
                ax.set_ylabel("time per step (us)")
            ax.grid(True, which="major", linewidth=0.3)
    handles = [
        matplotlib.lines.Line2D([], [], color="black", linestyle=s, marker=m, label=p)
        for p, (s, m) in style.items()
    ]
    handles.append(
        matplotlib.lines.Line2D([], [], color="0.6", label=f"baseline: {'/'.join(baseline)}")
    )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 6),
        title="line style and marker: path (colour: framework; bars: p10-p90)",
        fontsize="small",
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
