"""Showing a comparison on screen: one row per trajectory, then what failed, and a summary."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.core import CompareResult, PairResult, describe_divergence


def comparison_rows(result: CompareResult) -> tuple[list[str], list[tuple[str, ...]]]:
    """The comparison as plain text: column names, and one row per trajectory.

    The last cell is the verdict: `reference`, `agrees`, `differs (expected)`, `DIVERGES` or
    `FAILED <error>`.
    Shared by the terminal table and the docs site.
    """
    per_leaf = any(p.loss_max_ulp is not None for p in result.pairs)
    head = [
        "trajectory",
        "final loss",
        "max |diff|",
        "max ULP (loss)" if per_leaf else "max ULP",
        "bitwise",
        "tolerance",
        "first divergence",
        "verdict",
    ]
    ref = result.trajectories[result.reference]
    rows: list[tuple[str, ...]] = [
        (result.reference, _loss(ref.loss), "-", "-", "-", "-", "-", "reference")
    ]
    for p in result.pairs:
        tolerance = p.tolerance.describe()
        if p.loss_tolerance is not None:
            tolerance = f"loss {p.loss_tolerance.describe()}; {tolerance}"
        rows.append(
            (
                p.a,
                _loss(result.trajectories[p.a].loss),
                f"{p.max_abs:.3g}",
                _ulp(p.max_ulp if p.loss_max_ulp is None else p.loss_max_ulp),
                "yes" if p.bitwise else "no",
                tolerance,
                "-" if p.first_divergence is None else str(p.first_divergence),
                "agrees" if p.agree else "differs (expected)" if p.expected else "DIVERGES",
            )
        )
    for name, error in result.errors.items():
        rows.append((name, "-", "-", "-", "-", "-", "-", f"FAILED {error}"))
    return head, rows


_RIGHT = {"final loss", "max |diff|", "max ULP", "max ULP (loss)"}
_VERDICT_STYLE = {
    "agrees": "green",
    "differs": "yellow",
    "DIVERGES": "bold red",
    "FAILED": "bold red",
}


def table(result: CompareResult) -> Table:
    """One row per trajectory: final loss, distance to the reference, verdict."""
    t = Table(
        title=f"{result.model}: every trajectory against {result.reference}", title_justify="left"
    )
    head, rows = comparison_rows(result)
    for column in head:
        justify = "right" if column in _RIGHT else "center" if column == "bitwise" else "left"
        t.add_column(column, justify=justify)  # type: ignore[arg-type]
    for *cells, verdict in rows:
        style = _VERDICT_STYLE.get(verdict.split()[0])
        t.add_row(*cells, f"[{style}]{escape(verdict)}[/]" if style else escape(verdict))
    return t


def _loss(losses: list[np.ndarray]) -> str:
    return f"{float(losses[-1]):.9g}" if losses else "-"


def _ulp(ulp: int) -> str:
    return "NaN" if ulp == np.iinfo(np.int64).max else str(ulp)


def eval_table(result: CompareResult) -> Table:
    """Each trajectory's held-out metrics, and its outputs' distance from the reference's."""
    t = Table(
        title=f"eval on held-out data, outputs against {result.reference}", title_justify="left"
    )
    metric_names = list(next(iter(result.evals.values()), {}))
    for column in ("trajectory", *metric_names, "max |diff| outputs", "verdict"):
        t.add_column(column, justify="left" if column == "trajectory" else "right")
    expected = {p.a for p in result.pairs if p.tolerance.expected}
    for name, ev in result.evals.items():
        diff = result.eval_diffs.get(name)
        atol = result.eval_atol_for(name) or 0.0
        verdict = (
            "reference"
            if diff is None
            else "[green]agrees[/]"
            if diff <= atol
            else "[yellow]differs (expected)[/]"
            if name in expected
            else "[bold red]DIFFERS[/]"
        )
        cells = [f"{ev[m]:.4f}" if m == "accuracy" else f"{ev[m]:.6g}" for m in metric_names]
        t.add_row(name, *cells, "-" if diff is None else f"{diff:.3g}", verdict)
    return t


def plain_table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A table of plain strings (an analysis's), the first column left-aligned."""
    t = Table(title=title, title_justify="left")
    for i, column in enumerate(head):
        t.add_column(column, justify="left" if i == 0 or column.startswith("what") else "right")
    for row in rows:
        t.add_row(*(escape(cell) for cell in row))
    return t


def summary(result: CompareResult) -> str:
    """One plain line: how many trajectories agree, diverge and failed, out of how many."""
    c = result.counts()
    ran = len(result.trajectories) + len(result.errors)
    verdict = "all trajectories agree" if result.agree else "DISAGREEMENT"
    if result.agree and c["expected"]:
        verdict = "agreement where expected"
    expected = f", {c['expected']} differ as expected" if c["expected"] else ""
    failed = [a.key for a in result.analyses if not a.ok]
    analyses = f"; analysis {', '.join(failed)} failed" if failed else ""
    return (
        f"{verdict}: {c['agree']} agree with {result.reference}, {c['diverge']} diverge"
        f"{expected}, {c['failed']} failed ({ran} trajectories, {result.config['steps']} steps; "
        f"within the declared tolerances){analyses}"
    )


def divergence_line(result: CompareResult, pair: PairResult) -> str:
    """Where a pair parts: the step, the leaf, both values and their ULP distance."""
    assert pair.first_divergence is not None
    detail = describe_divergence(
        result.trajectories[pair.a], result.trajectories[pair.b], pair.first_divergence
    )
    tolerance = pair.tolerance.describe()
    return f"{pair.a} diverges from {pair.b} first at {detail} (tolerance: {tolerance})"


def print_report(result: CompareResult, console: Console) -> None:
    """The table, the eval and analysis tables, the tolerances' reasons, each divergence and
    each failure (whole), and the summary line."""
    console.print(table(result))
    if result.evals:
        console.print(eval_table(result))
    for analysis in result.analyses:
        console.print(plain_table(analysis.title, analysis.head, analysis.rows))
        for note in analysis.notes:
            console.print(escape(note))
    tolerances = {p.tolerance for p in result.pairs} | {
        p.loss_tolerance for p in result.pairs if p.loss_tolerance is not None
    }
    for tol in sorted(tolerances, key=lambda t: (t.max_ulp, t.atol)):
        console.print(f"[dim]tolerance {tol.describe()}: {escape(tol.reason)}[/]")
    for p in result.pairs:
        if p.expected:
            line = divergence_line(result, p)[len(p.a) + 1 :].replace("diverges", "differs", 1)
            console.print(f"[yellow]{escape(p.a)}[/] {escape(line)}, as expected")
        elif not p.agree:
            console.print(
                f"[bold red]{escape(p.a)}[/] {escape(divergence_line(result, p)[len(p.a) + 1 :])}"
            )
    for name, error in result.errors.items():
        whole = result.errors_full.get(name, error)
        console.print(f"[bold red]{escape(name)}[/] failed: {escape(whole)}", soft_wrap=True)
    style = "green" if result.agree else "bold red"
    console.print(f"[{style}]{escape(summary(result))}[/]")
