"""Showing a bench run: a rich table, the acceptance targets, a JSON file and a PNG plot."""

from __future__ import annotations

import io
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rich.console import Console
from rich.table import Table

from ..core import json_bytes, write_atomic
from ._depth import depth_table, fit_depths, plot_depths
from ._suite import Row

TINY_TARGET = 1.10  # harness step / pure-JAX step at the tiny shape
LARGE_TARGET = 1.05  # ... at the large shape
SCAN_TARGET = 20.0  # per-step dispatch / scan, per step, at the tiny shape
IDIOM_TARGET = 1.25  # each framework's fastest own path / pure JAX at the tiny shape


def table(rows: Sequence[Row]) -> Table:
    t = Table(
        title="time per training step (median over samples), ratio to the pure-JAX baseline",
        title_justify="left",
    )
    for column in (
        "model",
        "shape",
        "impl",
        "path",
        "compile ms",
        "median us",
        "p10-p90 us",
        "x baseline",
        "GB/s",
        "planned MB",
    ):
        left = column in ("model", "shape", "impl", "path")
        t.add_column(column, justify="left" if left else "right")
    for r in rows:
        t.add_row(*_cells(r), "-" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:.1f}")
    return t


def _cells(r: Row) -> tuple[str, ...]:
    return (
        r.model,
        r.shape,
        r.impl,
        r.path,
        f"{r.compile_s * 1e3:.0f}",
        f"{r.step_s_median * 1e6:.1f}",
        f"{r.step_s_p10 * 1e6:.1f}-{r.step_s_p90 * 1e6:.1f}",
        f"{r.ratio:.2f}",
        "-" if r.bandwidth_gbs is None else f"{r.bandwidth_gbs:.1f}",
    )


class Target(NamedTuple):
    """One acceptance target: its statement with the measured value, whether it was met,
    and whether it counts (`bench --quick` does not judge the large shapes: too noisy)."""

    text: str
    ok: bool
    judged: bool = True


def _tiny_and_large(rows: Sequence[Row]) -> tuple[str, str | None]:
    tiny = next(r.shape for r in rows if r.size == "tiny")
    return tiny, next((r.shape for r in rows if r.size == "large"), None)


def targets(rows: Sequence[Row], model: str | None = None, *, quick: bool = False) -> list[Target]:
    """The acceptance targets of a run, each with its measured value and whether it was met.

    The harness and scan targets were stated for the first model (the bias adder, whose
    baseline is pure JAX); `model` picks another. A `bench --depth` run has its own targets
    (`depth_targets`).
    """
    if any(r.depth is not None for r in rows):
        return depth_targets(rows, quick=quick)
    model = rows[0].model if model is None and rows else model
    rows = [r for r in rows if r.model == model]
    if not rows:
        return []
    out = []
    tiny, large = _tiny_and_large(rows)
    for shape, bound in ((tiny, TINY_TARGET), (large, LARGE_TARGET)):
        if shape is None:
            continue
        worst = max(rows_at(rows, shape, "harness"), key=lambda r: r.ratio)
        out.append(
            Target(
                f"{model}: harness step <= {bound:.2f}x pure JAX at {shape}: worst "
                f"{worst.ratio:.2f}x ({worst.impl})",
                worst.ratio <= bound,
                judged=not (quick and shape == large),
            )
        )
    step = {r.impl: r.step_s_median for r in rows_at(rows, tiny, "harness")}
    scan = {r.impl: r.step_s_median for r in rows_at(rows, tiny, "scan")}
    gain = min(step[i] / scan[i] for i in step)
    out.append(
        Target(
            f"{model}: scan >= {SCAN_TARGET:.0f}x cheaper per step than the harness step at "
            f"{tiny}: worst {gain:.0f}x",
            gain >= SCAN_TARGET,
        )
    )
    return out + idiom_targets(rows, tiny)


def rows_at(rows: Sequence[Row], shape: str, path: str) -> list[Row]:
    return [r for r in rows if r.shape == shape and r.path == path]


def idiom_targets(rows: Sequence[Row], shape: str) -> list[Target]:
    """Per framework: its fastest own path (`native` or `native:NAME`) against the baseline."""
    base_impl = rows[0].baseline.split("/", 1)[0]
    out = []
    for impl in dict.fromkeys(r.impl for r in rows if r.impl not in ("-", base_impl)):
        own = [
            r
            for r in rows
            if (r.impl, r.shape) == (impl, shape)
            and (r.path == "native" or r.path.startswith("native:"))
        ]
        if not own:
            continue
        best = min(own, key=lambda r: r.ratio)
        out.append(
            Target(
                f"{best.model}: {impl}'s fastest own idiom <= {IDIOM_TARGET:.2f}x "
                f"{best.baseline} at {shape}: {best.path} {best.ratio:.2f}x",
                best.ratio <= IDIOM_TARGET,
            )
        )
    return out


def depth_targets(rows: Sequence[Row], *, quick: bool = False) -> list[Target]:
    """`bench --depth`: the harness step at every depth, and each framework's idiom at L=1."""
    out = []
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model and r.impl != "-"]
        for size in dict.fromkeys(r.size for r in mine):
            harness = [r for r in mine if r.size == size and r.path == "harness"]
            worst = max(harness, key=lambda r: r.ratio)
            depths = sorted({r.depth or 0 for r in harness})
            out.append(
                Target(
                    f"{model}: harness step <= {TINY_TARGET:.2f}x {worst.baseline} at every "
                    f"depth {depths[0]}-{depths[-1]}, {size} width: worst {worst.ratio:.2f}x "
                    f"({worst.impl}, {worst.shape})",
                    worst.ratio <= TINY_TARGET,
                    judged=not (quick and size == "large"),
                )
            )
        shallow = min(r.depth or 0 for r in mine)
        tiny = next(r.shape for r in mine if r.size == "tiny" and r.depth == shallow)
        out += idiom_targets(mine, tiny)
    return out


def print_report(rows: Sequence[Row], console: Console, *, quick: bool = False) -> list[Target]:
    """Print the table, the roofline or depth fits, and the targets; return the targets."""
    console.print(table(rows))
    if any(r.depth is not None for r in rows):
        console.print(depth_table(fit_depths(rows)))
    if any(r.passes is not None for r in rows):
        console.print(roofline_table(rows))
    if quick:
        console.print(
            "--quick: its samples are few and its large shapes small, so the large-shape "
            "ratios are too noisy to judge; their targets are printed but not judged. Its "
            "compile times reuse XLA's cache for programs compiled before."
        )
    elif any(r.depth is not None for r in rows):
        console.print(
            "--depth: compile times reuse XLA's cache for programs compiled before (paths "
            "are not compiled cold; the time goes to samples)."
        )
    judged = targets(rows, quick=quick)
    for t in judged:
        mark = "[green]met[/]        " if t.ok else "[bold red]missed[/]     "
        console.print((mark if t.judged else "[dim]not judged[/] ") + t.text)
    return judged


def roofline_table(rows: Sequence[Row]) -> Table:
    """Large shapes: each harness step's traffic against the copy and reduction bounds."""
    t = Table(
        title="large shapes: the harness step against the memory bound (XLA's bytes and HLO)",
        title_justify="left",
    )
    for column in ("model", "shape", "impl", "MB/step", "GB/s", "copy GB/s", "reduce GB/s"):
        t.add_column(column, justify="left" if column in ("model", "shape", "impl") else "right")
    for column in ("kernels", "batch reads+writes", "at copy speed"):
        t.add_column(column, justify="right")
    for r in rows:
        if r.passes is None:
            continue
        bound = {q.path: q for q in rows if (q.model, q.shape, q.impl) == (r.model, r.shape, "-")}
        copy = bound["copy"].bandwidth_gbs if "copy" in bound else None
        reduce = bound["reduce"].bandwidth_gbs if "reduce" in bound else None
        p = r.passes
        achieved = p.bytes_accessed / r.step_s_median / 1e9
        t.add_row(
            r.model,
            r.shape,
            r.impl,
            f"{p.bytes_accessed / 1e6:.0f}",
            f"{achieved:.1f}",
            "-" if copy is None else f"{copy:.1f}",
            "-" if reduce is None else f"{reduce:.1f}",
            str(p.kernels),
            f"{p.batch_reads}+{p.batch_writes}",
            "-" if copy is None else f"{achieved / copy:.0%}",
        )
    return t


def write_json(
    rows: Sequence[Row],
    versions: dict[str, str],
    device: str,
    path: Path,
    *,
    quick: bool = False,
    seconds: float | None = None,
    command: str | None = None,
) -> None:
    """The run as JSON: every row, the depth fits, the targets, and the run's own wall time."""
    data = {
        "python": ".".join(platform.python_version_tuple()[:2]),
        "command": command,
        "seconds": seconds,
        "quick": quick,
        "models": sorted({r.model for r in rows}),
        "device": device,
        "versions": versions,
        "rows": [r.to_json() for r in rows],
        "depth_fits": [f.to_json() for f in fit_depths(rows)],
        "targets": [t._asdict() for t in targets(rows, quick=quick)],
    }
    write_atomic(path, json_bytes(data))


def plot(rows: Sequence[Row], path: Path) -> None:
    """Bars of the ratio to the baseline, per implementation and path; a panel per workload.

    Each bar is the median ratio, with the sample's p10-p90 as its error bar.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if any(r.depth is not None for r in rows):
        plot_depths(rows, path)
        return
    workloads = list(dict.fromkeys((r.model, r.shape) for r in rows))
    paths = list(dict.fromkeys(r.path for r in rows if r.impl != "-"))
    columns = 2
    nrows = (len(workloads) + columns - 1) // columns
    fig, axes = plt.subplots(
        nrows,
        columns,
        figsize=(7 * columns, 4.4 * nrows),
        constrained_layout=True,
        squeeze=False,
    )
    width = 0.84 / len(paths)
    for ax, (model, shape) in zip(axes.flat, workloads, strict=False):
        mine = [r for r in rows if (r.model, r.shape) == (model, shape)]
        impls = list(dict.fromkeys(r.impl for r in mine if r.impl != "-"))
        for j, p in enumerate(paths):
            found = [next((r for r in mine if (r.impl, r.path) == (i, p)), None) for i in impls]
            scale = [r.ratio / r.step_s_median if r else np.nan for r in found]
            ratios = [r.ratio if r else np.nan for r in found]
            low = [
                r.ratio - r.step_s_p10 * k if r else 0 for r, k in zip(found, scale, strict=True)
            ]
            high = [
                r.step_s_p90 * k - r.ratio if r else 0 for r, k in zip(found, scale, strict=True)
            ]
            ax.bar(
                np.arange(len(impls)) + j * width,
                ratios,
                width,
                yerr=[np.maximum(low, 0), np.maximum(high, 0)],
                capsize=1.5,
                error_kw={"linewidth": 0.7},
                label=p,
                # tab10's ten colours, then again hatched: no two paths look alike
                color=f"C{j % 10}",
                hatch="///" if j >= 10 else None,
            )
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        low_y, high_y = ax.get_ylim()
        # Under a decade the log axis has one major tick or none: label the minor ones too.
        minor = plain if high_y / low_y < 10 else matplotlib.ticker.NullFormatter()
        ax.yaxis.set_minor_formatter(minor)
        ax.set_title(f"{model} {shape}", fontsize="medium")
        ax.set_ylabel(f"time per step / {mine[0].baseline}")
        ax.set_xticks(np.arange(len(impls)) + 0.42 - width / 2)
        ax.set_xticklabels(impls, rotation=20)
        ax.set_xlabel("implementation (bars: paths; error bars: p10-p90)")
    for ax in list(axes.flat)[len(workloads) :]:
        ax.axis("off")
    handles: dict[str, Any] = {}  # every path once, from whichever panel has it
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=min(len(paths), 6),
        fontsize="small",
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
