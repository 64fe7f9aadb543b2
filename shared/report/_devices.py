"""Showing `state-rosetta bench --devices`: one row per model, mode and device layout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

DEVICE_COLUMNS = (
    "model",
    "shape",
    "mode",
    "devices",
    "processes",
    "median us",
    "p10-p90 us",
    "x 1 device",
)


def device_bench_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """The data-parallel harness step's median per step, from the device bench's rows (as
    dicts: `model`, `shape`, `mode`, `devices`, `processes`, `median_us`, `p10_us`,
    `p90_us`, `ratio_to_one_device`)."""
    table = Table(title="data-parallel harness step, median per step (CPU host devices)")
    for column in DEVICE_COLUMNS:
        table.add_column(
            column, justify="left" if column in ("model", "shape", "mode") else "right"
        )
    for r in rows:
        table.add_row(
            escape(str(r["model"])),
            escape(str(r["shape"])),
            escape(str(r["mode"])),
            str(r["devices"]),
            str(r["processes"]),
            f"{r['median_us']:.0f}",
            f"{r['p10_us']:.0f}-{r['p90_us']:.0f}",
            f"{r['ratio_to_one_device']:.2f}",
        )
    return table
