"""Benchmarks: what each framework's state handling costs per step (`state-rosetta bench`)."""

from ._report import plot, print_report, table, targets, write_json
from ._suite import BenchOptions, Row, Workload, measure, run_bench

__all__ = [
    "BenchOptions",
    "Row",
    "Workload",
    "measure",
    "plot",
    "print_report",
    "run_bench",
    "table",
    "targets",
    "write_json",
]
