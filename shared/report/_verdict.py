"""Showing the verdict bench: each case's cross-validation against its plain training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

MIB = 2**20
GROWTH = ("plain_time", "verdict_time", "plain_memory", "verdict_memory")


def verdict_table(rows: Sequence[dict[str, Any]]) -> Table:
    """One row per case: seconds and peak RSS of the plain training and of the verdict."""
    t = Table(title="cross-validation against plain training (fresh process each)")
    for column in (
        "sweep",
        "case",
        "plain s",
        "verdict s",
        "x plain",
        "plain MiB",
        "verdict MiB",
        "x plain",
    ):
        t.add_column(column, justify="left" if column in ("sweep", "case") else "right")
    for r in rows:
        t.add_row(
            r["sweep"],
            r["label"],
            f"{r['plain_s']:.2f}",
            f"{r['verdict_s']:.2f}",
            f"{r['verdict_s'] / r['plain_s']:.2f}",
            f"{r['plain_rss'] / MIB:.0f}",
            f"{r['verdict_rss'] / MIB:.0f}",
            f"{r['verdict_rss'] / r['plain_rss']:.2f}",
        )
    return t


def growth_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Each sweep's fitted growth: time and peak memory as a power of its variable."""
    t = Table(title="growth (log-log slope: 1 linear, 0 flat)")
    for column in ("sweep", "plain time", "verdict time", "plain memory", "verdict memory"):
        t.add_column(column, justify="left" if column == "sweep" else "right")
    for g in rows:
        t.add_row(
            g["sweep"],
            *(
                f"x^{g[k]:.2f}"
                for k in ("plain_time", "verdict_time", "plain_memory", "verdict_memory")
            ),
        )
    return t
