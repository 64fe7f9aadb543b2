"""Showing `state-rosetta diff`: the config lines, one row per pair, where each parts, and
the verdict."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.core import PairResult, SavedRun, Tolerance, describe_divergence, summary_counts


def diff_table(a: SavedRun, b: SavedRun, pairs: Sequence[PairResult]) -> Table:
    """One row per pair of trajectories: distance, bitwise, first divergence, verdict."""
    t = Table(title=f"{a.path} against {b.path}", title_justify="left")
    for column in ("trajectory", "max |diff|", "max ULP", "bitwise", "first divergence", "verdict"):
        t.add_column(column)
    for p in pairs:
        t.add_row(
            escape(p.a if p.a == p.b else f"{p.a} against {p.b}"),
            f"{p.max_abs:.3g}",
            str(p.max_ulp),
            "yes" if p.bitwise else "no",
            "-" if p.first_divergence is None else str(p.first_divergence),
            "[green]agrees[/]" if p.agree else "[bold red]DIVERGES[/]",
        )
    return t


def print_diff(
    console: Console,
    a: SavedRun,
    b: SavedRun,
    pairs: Sequence[PairResult],
    unpaired: Sequence[str],
    tolerance: Tolerance,
    differences: Sequence[str] = (),
) -> bool:
    """Print the diff of `a` against `b` (the reference); return whether the runs agree.

    **Arguments:** the runs, their pairs and the trajectories only one holds (`diff_runs`),
    the tolerance they were judged by, and the config lines that differ (printed first).
    """
    for line in differences:
        console.print(f"[yellow]config differs[/] {escape(line)}")
    console.print(diff_table(a, b, pairs))
    for p in pairs:
        if p.first_divergence is not None:
            detail = describe_divergence(
                a.trajectories[p.a], b.trajectories[p.b], p.first_divergence
            )
            ours, theirs = f"{p.a} ({a.path.name})", f"{p.b} ({b.path.name})"
            console.print(
                f"[bold red]{escape(ours)}[/] diverges from {escape(theirs)} first at "
                f"{escape(detail)}"
            )
    for line in unpaired:
        console.print(f"[dim]only in {escape(line)}[/]")
    counts = summary_counts(pairs)
    agree = counts["diverge"] == 0
    verdict = "[green]the runs agree[/]" if agree else "[bold red]the runs differ[/]"
    console.print(
        f"{verdict}: {counts['agree']} trajectories agree, {counts['diverge']} diverge "
        f"(tolerance {tolerance.describe()})"
    )
    return agree
