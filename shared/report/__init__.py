"""Showing runs: the terminal tables, the JSON files and the plots."""

from ._checkpoint import resume_table, transplant_matrix
from ._devices import device_bench_table
from ._diff import diff_table, print_diff
from ._json import write_json
from ._plot import Style, figure, plot, trajectory_styles, ulp_map
from ._suggest import print_suggestions, suggestions_table
from ._table import (
    comparison_rows,
    divergence_line,
    eval_table,
    plain_table,
    print_report,
    summary,
    table,
)
from ._verdict import growth_table, verdict_table

__all__ = [
    "Style",
    "comparison_rows",
    "device_bench_table",
    "diff_table",
    "divergence_line",
    "eval_table",
    "figure",
    "growth_table",
    "plain_table",
    "plot",
    "print_diff",
    "print_report",
    "print_suggestions",
    "resume_table",
    "suggestions_table",
    "summary",
    "table",
    "trajectory_styles",
    "transplant_matrix",
    "ulp_map",
    "verdict_table",
    "write_json",
]
