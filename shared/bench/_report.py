"""Showing a bench run: a rich table, the acceptance targets, a JSON file and a PNG plot."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ..core import write_atomic
from ._suite import Row

TINY_TARGET = 1.10  # harness step / pure-JAX step at the tiny shape
LARGE_TARGET = 1.05  # ... at the large shape
SCAN_TARGET = 20.0  # per-step dispatch / scan, per step, at the tiny shape


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


def targets(rows: Sequence[Row], model: str | None = None) -> list[tuple[str, bool]]:
    """The acceptance targets, each with whether it was met.

    They were stated for the first model (the bias adder, whose baseline is pure JAX);
    `model` picks another.
    """
    model = rows[0].model if model is None and rows else model
    rows = [r for r in rows if r.model == model]
    if not rows:
        return []
    out = []
    tiny = next(r.shape for r in rows if r.size == "tiny")
    large = next((r.shape for r in rows if r.size == "large"), None)
    for shape, bound in ((tiny, TINY_TARGET), (large, LARGE_TARGET)):
        if shape is None:
            continue
        worst = max(r.ratio for r in rows if r.shape == shape and r.path == "harness")
        out.append(
            (
                f"{model}: harness step <= {bound:.2f}x pure JAX at {shape}: worst {worst:.2f}x",
                worst <= bound,
            )
        )
    step = {r.impl: r.step_s_median for r in rows if r.shape == tiny and r.path == "harness"}
    scan = {r.impl: r.step_s_median for r in rows if r.shape == tiny and r.path == "scan"}
    gain = min(step[i] / scan[i] for i in step)
    out.append(
        (
            f"{model}: scan >= {SCAN_TARGET:.0f}x cheaper per step than the harness step at "
            f"{tiny}: worst {gain:.0f}x",
            gain >= SCAN_TARGET,
        )
    )
    return out


def print_report(rows: Sequence[Row], console: Console) -> None:
    console.print(table(rows))
    for text, ok in targets(rows):
        console.print(("[green]met[/]   " if ok else "[bold red]missed[/] ") + text)


def write_json(rows: Sequence[Row], versions: dict[str, str], device: str, path: Path) -> None:
    data = {
        "models": sorted({r.model for r in rows}),
        "device": device,
        "versions": versions,
        "rows": [r.to_json() for r in rows],
    }
    write_atomic(path, json.dumps(data, indent=1).encode())


def plot(rows: Sequence[Row], path: Path) -> None:
    """Bars of the ratio to the baseline, per implementation and path; a panel per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys((r.model, r.shape) for r in rows))
    paths = ["native", "harness-pytree", "harness", "scan"]
    columns = 2
    nrows = (len(workloads) + columns - 1) // columns
    fig, axes = plt.subplots(
        nrows,
        columns,
        figsize=(6 * columns, 4.2 * nrows),
        constrained_layout=True,
        squeeze=False,
    )
    width = 0.8 / len(paths)
    for ax, (model, shape) in zip(axes.flat, workloads, strict=False):
        mine = [r for r in rows if (r.model, r.shape) == (model, shape)]
        impls = list(dict.fromkeys(r.impl for r in mine if r.impl != "-"))
        for j, p in enumerate(paths):
            ratios = [
                next((r.ratio for r in mine if (r.impl, r.path) == (i, p)), np.nan) for i in impls
            ]
            ax.bar(np.arange(len(impls)) + j * width, ratios, width, label=p)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set(
            title=f"{model} {shape}: time per step / baseline",
            yscale="log",
            xticks=np.arange(len(impls)) + 0.4 - width / 2,
        )
        ax.set_xticklabels(impls, rotation=20)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
