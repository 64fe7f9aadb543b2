"""Showing runs: the terminal tables, the JSON files and the plots."""

from ._json import write_json
from ._plot import Style, figure, plot, trajectory_styles, ulp_map
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
    "Style",
    "comparison_rows",
    "divergence_line",
    "eval_table",
    "figure",
    "plain_table",
    "plot",
    "print_report",
    "summary",
    "table",
    "trajectory_styles",
    "ulp_map",
    "write_json",
]
