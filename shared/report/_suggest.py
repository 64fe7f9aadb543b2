"""Showing measured tolerances: what was measured, what is suggested, what is declared."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.core import Measured, tolerances_block


def suggestions_table(model: str, measured: Sequence[Measured]) -> Table:
    """One row per measurement: the pair, its largest differences, the bound suggested from
    them, the spec's declared bound, and whether that holds what was measured."""
    t = Table(
        title=f"{model}: the rounding floor, measured from the reference alone",
        title_justify="left",
    )
    for column in ("measured", "field", "max |diff|", "max ULP", "suggested", "declared", "so"):
        t.add_column(column, justify="right" if column.startswith("max") else "left")
    for m in measured:
        declared = "-" if m.declared is None else m.declared.describe()
        t.add_row(
            escape(m.name),
            m.slot,
            f"{m.pair.max_abs:.3g}",
            str(m.pair.max_ulp),
            m.suggested.describe(),
            declared,
            escape(m.verdict()),
        )
    return t


def print_suggestions(model: str, measured: Sequence[Measured], console: Console) -> None:
    """The table, what each measurement is, and the block to paste into the spec."""
    console.print(suggestions_table(model, measured))
    for m in measured:
        console.print(f"[dim]{escape(m.name)}: {escape(m.what)}[/]")
    console.print("\nA block to paste into the model's spec (Tolerances from shared):\n")
    console.print(tolerances_block(measured), markup=False, highlight=False, soft_wrap=True)
