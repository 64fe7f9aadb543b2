"""Benchmarks: what each framework's state handling costs per step (`state-rosetta bench`)."""

from ._depth import DepthFit, depth_table, fit_depths, plot_depths
from ._devices import DeviceRow, device_models, device_shape, run_device_bench
from ._options import BenchOptions, Workload
from ._report import Target, plot, print_report, roofline_table, table, targets, write_json
from ._roofline import Passes, passes
from ._suite import Row, measure, run_bench

__all__ = [
    "BenchOptions",
    "DepthFit",
    "DeviceRow",
    "Passes",
    "Row",
    "Target",
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
    "write_json",
]
