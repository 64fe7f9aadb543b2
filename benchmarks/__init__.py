"""Benchmarks: what each framework's state handling costs per step (`state-rosetta bench`)."""

from . import report
from .bias_adder import BenchOptions, Row, run_bench

__all__ = ["BenchOptions", "Row", "report", "run_bench"]
