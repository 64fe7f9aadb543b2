"""Showing a comparison on screen: one row per trajectory, then what failed, and a summary."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.core import CompareResult, LeafDiff, PairResult, describe_divergence


def comparison_rows(result: CompareResult) -> tuple[list[str], list[tuple[str, ...]]]:
    """The comparison as plain text: column names, and one row per pair.

    Each trajectory is compared loop for loop with the reference implementation's same loop
    (`against`), and each loop other than the reference's with its own implementation's
    reference loop (a loop check). The `lockstep` cell is the harness loops' step-by-step
    verdict. The last cell is the verdict: `reference`, `agrees`, `agrees locally`,
    `differs (expected)`, `reported`, `DIVERGES` or `FAILED <error>`. Shared by the
    terminal table and the docs site.
    """
    per_leaf = any(p.loss_max_ulp is not None for p in result.pairs)
    head = [
        "trajectory",
        "against",
        "final loss",
        "max |diff|",
        "max ULP (loss)" if per_leaf else "max ULP",
        "ULP@scale",
        "lockstep",
        "tolerance",
        "first divergence",
        "verdict",
    ]
    ref = result.trajectories[result.reference]
    rows: list[tuple[str, ...]] = [
        (result.reference, "-", _loss(ref.loss), *(["-"] * 6), "reference")
    ]
    for p in result.pairs:
        tolerance = p.tolerance.describe()
        if p.loss_tolerance is not None:
            tolerance = f"loss {p.loss_tolerance.describe()}; {tolerance}"
        rows.append(
            (
                p.a,
                _against(p),
                _loss(result.trajectories[p.a].loss),
                f"{p.max_abs:.3g}",
                _ulp(p.max_ulp if p.loss_max_ulp is None else p.loss_max_ulp),
                f"{p.max_ulp_at_scale:.3g}",
                _lockstep(p),
                tolerance,
                "-" if p.first_divergence is None else str(p.first_divergence),
                p.verdict,
            )
        )
    for name, error in result.errors.items():
        rows.append((name, *(["-"] * 8), f"FAILED {error}"))
    return head, rows


def _against(pair: PairResult) -> str:
    """The pair's reference, short: the other implementation (its same loop), `own LOOP`
    (a loop check), or the trajectory."""
    impl, _, loop = pair.b.rpartition("/")
    if pair.kind == "loop":
        return f"own {loop}"
    if pair.kind == "across" and pair.a.rpartition("/")[2] == loop:
        return impl
    return pair.b


def _lockstep(pair: PairResult) -> str:
    """The lockstep's verdict: `bitwise`, its largest |diff| (within the bound), or where
    it diverges."""
    ls = pair.lockstep
    if ls is None:
        return "-"
    if ls.isolated:
        return f"isolated step {', '.join(str(s) for s in ls.failing_steps)}"
    if ls.first_divergence is not None:
        return f"DIVERGES at step {ls.first_divergence.step}"
    return "bitwise" if ls.bitwise else f"<= {ls.max_abs:.2g}"


_RIGHT = {"final loss", "max |diff|", "max ULP", "max ULP (loss)", "ULP@scale"}
_VERDICT_STYLE = {
    "agrees": "green",
    "reported": "yellow",
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
        justify = "right" if column in _RIGHT else "left"
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
    if result.kept == "summaries":
        analyses += "; a large run: per-step summaries kept, not every value"
    return (
        f"{verdict}: {c['agree']} agree with {result.reference}, {c['diverge']} diverge"
        f"{expected}, {c['failed']} failed ({ran} trajectories, {result.config['steps']} steps; "
        f"within the declared tolerances){analyses}"
    )


LEAVES_SHOWN = 4
"""How many of the leaves that diverge at a pair's first diverging step the terminal shows
(the JSON keeps them all, in data-flow order)."""


def divergence_line(result: CompareResult, pair: PairResult) -> str:
    """Where a pair parts: the step, the first leaf (data-flow order), both values and their
    distances; then the next few leaves that diverge at that step."""
    div = pair.first_divergence
    assert div is not None
    detail = describe_divergence(
        result.trajectories.get(pair.a), result.trajectories.get(pair.b), div
    )
    tolerance = pair.tolerance.describe()
    line = f"{pair.a} diverges from {pair.b} first at {detail} (tolerance: {tolerance})"
    return line + _more_leaves(div.leaves)


def _more_leaves(leaves: Sequence[LeafDiff]) -> str:
    if len(leaves) <= 1:
        return ""
    shown = "; ".join(leaf.describe() for leaf in leaves[1:LEAVES_SHOWN])
    rest = len(leaves) - LEAVES_SHOWN
    more = f"; and {rest} more (the JSON lists them all)" if rest > 0 else ""
    return f"; then, in data-flow order: {shown}{more}"


def lockstep_line(pair: PairResult) -> str:
    """Where a pair's lockstep parts: the step, and the leaves in data-flow order."""
    ls = pair.lockstep
    assert ls is not None and ls.first_divergence is not None
    div = ls.first_divergence
    line = (
        f"{pair.a} diverges from {pair.b} in lockstep (one step from the same values) first "
        f"at {div.describe()} (tolerance: {ls.tolerance.describe()}){_more_leaves(div.leaves)}"
    )
    if div.layers is not None and div.layers.note:  # where inside the step it starts
        line += f"\n{pair.a} {div.layers.note}"
    return line


def isolated_line(pair: PairResult) -> str:
    """A lockstep whose steps beyond the bound are isolated: each, and the first's leaves."""
    ls = pair.lockstep
    assert ls is not None and ls.first_divergence is not None
    steps = ", ".join(str(s) for s in ls.failing_steps)
    return (
        f"{pair.a} parts from {pair.b} in lockstep at isolated step(s) {steps} only, each "
        f"followed by agreeing steps: first at {ls.first_divergence.describe()} (tolerance: "
        f"{ls.tolerance.describe()}){_more_leaves(ls.first_divergence.leaves)}; a value that "
        "rounding put across a threshold (a relu's zero, a max) parts one step alone, a "
        "wrong formula parts at every step (a bug that fires once would read the same: look "
        "there)"
    )


def parting_line(pair: PairResult) -> str:
    """A pair that parts running free but agrees: where, and why that is not a bug."""
    assert pair.parting is not None and pair.first_divergence is not None
    return (
        f"{pair.a} parts from {pair.b} running free from step {pair.parting.step} "
        f"({pair.first_divergence.describe()}); {pair.parting.reason}"
    )


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
        elif p.lockstep is not None and p.lockstep.isolated:
            # Reported, not failed: the step alone parts (see PairResult.isolated).
            if p.parting is not None:
                console.print(f"[yellow]{escape(p.a)}[/] {escape(parting_line(p)[len(p.a) + 1 :])}")
            console.print(f"[yellow]{escape(p.a)}[/] {escape(isolated_line(p)[len(p.a) + 1 :])}")
        elif p.lockstep is not None and not p.lockstep.agree:
            if not p.agree:  # where it parts running free, then where its own step is wrong
                line = divergence_line(result, p)[len(p.a) + 1 :]
                console.print(f"[bold red]{escape(p.a)}[/] {escape(line)}")
            console.print(f"[bold red]{escape(p.a)}[/] {escape(lockstep_line(p)[len(p.a) + 1 :])}")
        elif p.parting is not None:
            console.print(f"[yellow]{escape(p.a)}[/] {escape(parting_line(p)[len(p.a) + 1 :])}")
        elif not p.agree and not p.judged:
            line = divergence_line(result, p)[len(p.a) + 1 :].replace("diverges", "differs", 1)
            console.print(
                f"[yellow]{escape(p.a)}[/] {escape(line)}; reported, not judged: the model "
                "declares no bound between these loops (--suggest-tolerances measures one)"
            )
        elif not p.agree:
            console.print(
                f"[bold red]{escape(p.a)}[/] {escape(divergence_line(result, p)[len(p.a) + 1 :])}"
            )
    for name, error in result.errors.items():
        whole = result.errors_full.get(name, error)
        console.print(f"[bold red]{escape(name)}[/] failed: {escape(whole)}", soft_wrap=True)
    style = "green" if result.agree else "bold red"
    console.print(f"[{style}]{escape(summary(result))}[/]")
