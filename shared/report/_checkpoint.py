"""Showing `state-rosetta checkpoint`: the resume proof's table and the transplant matrix.

The checkpoint commands pass plain cells (this package does not import theirs): each
verdict is text whose first word picks its colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.markup import escape
from rich.table import Table

_STYLE = {"bitwise": "green", "failed": "bold red", "DIFFERS": "bold red"}


def resume_table(title: str, rows: Sequence[Sequence[str]]) -> Table:
    """One row per resumed case: implementation, loop, optimizer, verdict (`bitwise`,
    `DIFFERS at ...`, `failed: ...`) and audit."""
    table = Table(title=title)
    for column in ("implementation", "loop", "optimizer", "resumed = uninterrupted", "audit"):
        table.add_column(column)
    for *cells, verdict, audit in rows:
        word, _, rest = verdict.partition(" ")
        style = _STYLE.get(word.rstrip(":"), "bold red")
        shown = f"[{style}]{escape(word)}[/]" + (f" {escape(rest)}" if rest else "")
        table.add_row(*(escape(c) for c in cells), shown, escape(audit))
    return table


def transplant_matrix(
    title: str, names: Sequence[str], cells: Mapping[tuple[str, str], tuple[str, bool]]
) -> Table:
    """Rows: saved in A; columns: restored into B; each cell `(verdict, ok)` by `(A, B)`:
    green when ok, yellow when ok as expected (`expected`), red when not ok."""
    table = Table(title=title)
    table.add_column("saved in \\ restored into")
    for n in names:
        table.add_column(escape(n))
    for a in names:
        row = [escape(a)]
        for b in names:
            cell = cells.get((a, b))
            if cell is None:
                row.append("-")
                continue
            verdict, ok = cell
            style = "green" if ok and verdict != "expected" else ("yellow" if ok else "bold red")
            row.append(f"[{style}]{escape(verdict)}[/]")
        table.add_row(*row)
    return table
