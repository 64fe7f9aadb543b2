"""Showing runs: the terminal tables, the JSON files and the plots."""

from ._json import write_json
from ._plot import plot
from ._table import (
    comparison_rows,
    divergence_line,
    eval_table,
    plain_table,
    print_report,
    summary,
    table,
)

__all__ = [
    "comparison_rows",
    "divergence_line",
    "eval_table",
    "plain_table",
    "plot",
    "print_report",
    "summary",
    "table",
    "write_json",
]
