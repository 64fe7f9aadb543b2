"""Benchmarks: what each framework's state handling costs per step (`state-rosetta bench`)."""

from . import report
from .suite import MODELS, BenchOptions, Row, Workload, measure, run_bench

__all__ = ["MODELS", "BenchOptions", "Row", "Workload", "measure", "report", "run_bench"]
