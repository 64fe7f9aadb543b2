"""A data-parallel comparison run: every trajectory on N devices against one device.

Data-parallel runs train small models on forced CPU devices, so they keep every step of
every trajectory and compare the recorded runs (`compare`), each against the reference's
single-device harness run by the model's data-parallel bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._analysis import eval_differences, run_analyses
from ._compare import compare
from ._options import Progress, RunOptions
from ._pairs import plan_pairs
from ._parallel import (
    DATA_AXIS,
    check_batches_divide,
    check_same_on_every_process,
    data_mesh,
)
from ._plugin import contained  # the user's code may call sys.exit()
from ._protocol import Implementation, ImplementationFactory
from ._replicas import replica_report
from ._result import CompareResult
from ._setup import RunSetup, build, describe_error
from ._spec import ModelSpec
from ._tolerance import ORACLE_KEY, Tolerances
from ._trajectory import Trajectory

SINGLE_DEVICE = "1-device"
"""The loop name of a data-parallel run's reference: the harness step on one device."""


def run_data_parallel(
    spec: ModelSpec,
    run: RunSetup,
    factories: Sequence[tuple[str, ImplementationFactory]],
    impls: Sequence[tuple[str, Implementation]],
    tolerances: Tolerances,
    progress: Progress | None,
) -> CompareResult:
    """Train every implementation data-parallel in every loop and compare each with the
    reference's single-device harness run."""
    options, config = run.options, run.config
    parallel = options.data_parallel
    assert parallel is not None
    names = [impl.name for _, impl in impls]
    mesh = data_mesh(parallel.devices)
    check_batches_divide(run.batches, parallel.devices)  # before anything trains
    check_same_on_every_process(run.batches)
    # shard_map: each framework's own cross-device argument; jit and unsynced: none.
    pconfig = config
    if parallel.synced and spec.cross_device is not None:
        pconfig = spec.cross_device(config, DATA_AXIS)
    trajectories: dict[str, Trajectory] = {}
    errors: dict[str, tuple[str, str]] = {}
    outputs: dict[str, np.ndarray] = {}
    evals: dict[str, dict[str, float]] = {}
    replicas: dict[str, list[dict[str, np.ndarray]]] = {}
    by_name = {impl.name: impl for _, impl in impls}
    ref_name = _single_device_reference(spec, options, names)
    reference = f"{ref_name}/{SINGLE_DEVICE}"

    def evaluate(key: str, impl: Implementation) -> None:
        if spec.evaluation is not None:
            outputs[key], evals[key] = run.evaluate(impl, trajectories[key])

    if progress:
        progress(reference)
    try:
        with contained(f"training {reference}"):
            trajectories[reference] = run.train(by_name[ref_name], "harness", config)
            evaluate(reference, by_name[ref_name])
    except Exception as e:  # reported, not raised: a failing framework is a finding
        errors[reference] = describe_error(e)
    for (label, factory), (_, impl) in zip(factories, impls, strict=True):
        loops = [
            loop
            for loop in options.loops
            if loop != "native" or (not parallel.mapped and hasattr(impl, "native_loop"))
        ]
        try:
            mapped_impl = build(label, factory, pconfig, spec)
        except Exception as e:  # e.g. a framework without a cross-device argument
            for loop in loops:
                errors[f"{impl.name}/{loop}"] = describe_error(e)
            continue
        for loop in loops:
            key = f"{impl.name}/{loop}"
            if progress:
                progress(f"{key} on {parallel.devices} devices ({parallel.mode})")
            try:
                with contained(f"training {key}"):
                    result = run.train_parallel(mapped_impl, loop, pconfig, parallel, mesh)
                    trajectories[key] = result.trajectory
                    if result.replicas is not None:
                        replicas[key] = result.replicas
                    evaluate(key, impl)
            except Exception as e:  # reported, not raised, as on one device
                errors[key] = describe_error(e)
    if spec.oracle is not None:
        oracle = spec.oracle(run.batches, config, run.optimizer)
        trajectories[ORACLE_KEY] = (
            oracle if isinstance(oracle, Trajectory) else Trajectory.from_steps(oracle)
        )
    if reference not in trajectories:  # the reference failed: compare with the first run
        reference = next(iter(trajectories), reference)
    devices = tolerances.devices.get(parallel.mode)
    plans = plan_pairs(list(trajectories), reference, tolerances, aside=True, devices=devices)
    pairs = [
        compare(
            trajectories[p.a],
            trajectories[p.b],
            p.tolerance,
            names=(p.a, p.b),
            loss_tolerance=p.loss_tolerance,
            kind=p.kind,
        )
        for p in plans
    ]
    eval_diffs = eval_differences(outputs, reference)
    eval_atols = {k: t.atol for k, t in tolerances.evals.items() if k in trajectories}
    if parallel.mode in tolerances.devices_eval:
        bound = tolerances.devices_eval[parallel.mode].atol
        eval_atols.update(
            {k: max(bound, eval_atols.get(k, 0.0)) for k in trajectories if k != reference}
        )
    analyses = run_analyses(
        run, impls, factories, trajectories, outputs, evals, reference, progress
    )
    if replicas and reference in trajectories:
        analyses.append(replica_report(replicas, trajectories[reference], reference))
    return CompareResult(
        config={},
        trajectories=trajectories,
        errors={k: v[0] for k, v in errors.items()},
        reference=reference,
        pairs=pairs,
        versions={},
        model=spec.name,
        evals=evals,
        eval_diffs=eval_diffs,
        eval_atol=None if spec.evaluation is None else spec.evaluation.tolerance.atol,
        eval_atols=eval_atols,
        analyses=analyses,
        errors_full={k: v[1] for k, v in errors.items() if v[1] != v[0]},
    )


def _single_device_reference(spec: ModelSpec, options: RunOptions, names: Sequence[str]) -> str:
    """The implementation whose single-device harness run a data-parallel run is compared
    with: `--reference NAME`, else the spec's reference, else the first one."""
    if options.reference is not None:
        name = options.reference.partition("/")[0]
        if name not in names:
            raise ValueError(
                f"--reference: no implementation {name!r} in this run; with --devices the "
                f"reference is an implementation's single-device harness run: one of "
                f"{', '.join(names)}"
            )
        return name
    return spec.reference if spec.reference is not None and spec.reference in names else names[0]


__all__ = ["SINGLE_DEVICE", "run_data_parallel"]
