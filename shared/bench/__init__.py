"""Benchmarks: what each framework's state handling costs per step (`state-rosetta bench`)."""

from ._depth import DepthFit, depth_table, fit_depths, plot_depths
from ._devices import DeviceRow, device_models, device_shape, run_device_bench
from ._options import BenchOptions, Workload
from ._report import Target, plot, print_report, roofline_table, table, targets, write_json
from ._roofline import Passes, passes
from ._suite import Row, measure, run_bench
from ._verdict import Case as VerdictCase
from ._verdict import Measured as VerdictMeasured
from ._verdict import cases as verdict_cases
from ._verdict import fit as verdict_fit
from ._verdict_targets import verdict_targets

__all__ = [
    "BenchOptions",
    "DepthFit",
    "DeviceRow",
    "Passes",
    "Row",
    "Target",
    "VerdictCase",
    "VerdictMeasured",
    "Workload",
    "depth_table",
    "device_models",
    "device_shape",
    "fit_depths",
    "measure",
    "passes",
    "plot",
    "plot_depths",
    "print_report",
    "roofline_table",
    "run_bench",
    "run_device_bench",
    "table",
    "targets",
    "verdict_cases",
    "verdict_fit",
    "verdict_targets",
    "write_json",
]
