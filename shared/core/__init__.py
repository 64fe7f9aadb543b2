"""The harness's core: it knows no model and no framework.

A model is described by a [`ModelSpec`][]; an implementation of it in some framework follows
the [`Implementation`][] protocol. The core trains any implementation with one generic
jitted optax step (per call, or in one `lax.scan`) or with its own native loop, records
every step under canonical names, and compares trajectories leaf by leaf.
"""

from ._align import RUNNING_AVERAGE, AlignmentError
from ._analysis import AnalysisContext
from ._canonical import canonical_from_paths, tree_from_canonical
from ._compare import Divergence, PairResult, compare, describe_divergence, leaf_value
from ._crossval import assert_cross_validated, check_agreement, cross_validate
from ._dataflow import LeafOrder, forward_order
from ._divergence import LeafDiff, Parting
from ._faults import FaultHooks, fault_hooks, install_fault_hooks
from ._files import (
    NON_FINITE,
    check_writable,
    finite_or_named,
    json_bytes,
    private_folder,
    write_atomic,
)
from ._footprint import Footprint, estimate_footprint, machine_memory
from ._functional_loop import functional_loop
from ._harness import (
    LOOPS,
    FlatStep,
    InputsFn,
    LossFn,
    TrainStep,
    run_harness,
    run_loop,
    run_native,
    run_scan,
    scan_body,
    unstack,
)
from ._heap import release_freed
from ._keys import step_keys
from ._layers import LayerDiff, LayerReport
from ._loader import load_object
from ._lockstep import Lockstep, make_probe
from ._optim import OPTIMIZERS, NumpyOptimizer, OptimizerConfig, optimizer_config_of
from ._options import KEEP, Progress, RunOptions
from ._optstate import canonical_opt_state, leaf_name, named_leaves, opt_state_from_canonical
from ._parallel import (
    DATA_AXIS,
    PARALLEL_MODES,
    Parallel,
    ParallelRun,
    check_batches_divide,
    data_mesh,
    run_parallel,
)
from ._plugin import PluginError, PluginInterrupt, contained
from ._protocol import (
    Batch,
    Canonical,
    Implementation,
    ImplementationFactory,
    LayerCall,
    LayerTrace,
    NativeLoop,
    Params,
    State,
)
from ._replicas import ReplicaSplit, replica_report
from ._result import CompareResult, package_versions
from ._run import run_model
from ._runfile import (
    SIDECAR_SUFFIX,
    SavedRun,
    config_differences,
    diff_runs,
    load_run,
    save_run,
    summary_counts,
)
from ._runners import NativeRunner
from ._setup import RunSetup, build, settings_for, setup_run
from ._spec import (
    Analysis,
    AnalysisResult,
    Batches,
    BenchShape,
    Evaluation,
    ModelSpec,
    Option,
    Settings,
)
from ._stream import PairStream
from ._stream_run import KEEP_VALUES
from ._suggest import Measured, measure_tolerances, tolerances_block
from ._tolerance import (
    BITWISE,
    ORACLE_KEY,
    UNDECLARED,
    Tolerance,
    Tolerances,
    loop_of,
    parse_tolerance,
    ulp_distance,
)
from ._trajectory import Trajectory
from ._validate import (
    check_batch_size,
    check_canonical_shapes,
    check_finite,
    check_float_array,
    check_steps,
)

__all__ = [
    "BITWISE",
    "DATA_AXIS",
    "KEEP",
    "KEEP_VALUES",
    "LOOPS",
    "NON_FINITE",
    "OPTIMIZERS",
    "ORACLE_KEY",
    "PARALLEL_MODES",
    "RUNNING_AVERAGE",
    "SIDECAR_SUFFIX",
    "UNDECLARED",
    "AlignmentError",
    "Analysis",
    "AnalysisContext",
    "AnalysisResult",
    "Batch",
    "Batches",
    "BenchShape",
    "Canonical",
    "CompareResult",
    "Divergence",
    "Evaluation",
    "FaultHooks",
    "FlatStep",
    "Footprint",
    "Implementation",
    "ImplementationFactory",
    "InputsFn",
    "LayerCall",
    "LayerDiff",
    "LayerReport",
    "LayerTrace",
    "LeafDiff",
    "LeafOrder",
    "Lockstep",
    "LossFn",
    "Measured",
    "ModelSpec",
    "NativeLoop",
    "NativeRunner",
    "NumpyOptimizer",
    "OptimizerConfig",
    "Option",
    "PairResult",
    "PairStream",
    "Parallel",
    "ParallelRun",
    "Params",
    "Parting",
    "PluginError",
    "PluginInterrupt",
    "Progress",
    "ReplicaSplit",
    "RunOptions",
    "RunSetup",
    "SavedRun",
    "Settings",
    "State",
    "Tolerance",
    "Tolerances",
    "TrainStep",
    "Trajectory",
    "assert_cross_validated",
    "build",
    "canonical_from_paths",
    "canonical_opt_state",
    "check_agreement",
    "check_batch_size",
    "check_batches_divide",
    "check_canonical_shapes",
    "check_finite",
    "check_float_array",
    "check_steps",
    "check_writable",
    "compare",
    "config_differences",
    "contained",
    "cross_validate",
    "data_mesh",
    "describe_divergence",
    "diff_runs",
    "estimate_footprint",
    "fault_hooks",
    "finite_or_named",
    "forward_order",
    "functional_loop",
    "install_fault_hooks",
    "json_bytes",
    "leaf_name",
    "leaf_value",
    "load_object",
    "load_run",
    "loop_of",
    "machine_memory",
    "make_probe",
    "measure_tolerances",
    "named_leaves",
    "opt_state_from_canonical",
    "optimizer_config_of",
    "package_versions",
    "parse_tolerance",
    "private_folder",
    "release_freed",
    "replica_report",
    "run_harness",
    "run_loop",
    "run_model",
    "run_native",
    "run_parallel",
    "run_scan",
    "save_run",
    "scan_body",
    "settings_for",
    "setup_run",
    "step_keys",
    "summary_counts",
    "tolerances_block",
    "tree_from_canonical",
    "ulp_distance",
    "unstack",
    "write_atomic",
]
