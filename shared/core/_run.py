"""One comparison run of any model: build the implementations, train every loop side by
side, compare as it goes (loop for loop, and in lockstep), evaluate, analyse."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import jax
import numpy as np

from ._analysis import eval_differences, run_analyses
from ._compare import steps_of
from ._dataflow import LeafOrder, forward_order
from ._divergence import PairResult
from ._harness import LOOPS, unstack
from ._lockstep import Lockstep
from ._options import Progress, RunOptions
from ._pairs import explain_partings, plan_pairs
from ._parallel_run import run_data_parallel
from ._plugin import contained  # the user's code may call sys.exit()
from ._protocol import Implementation, ImplementationFactory
from ._result import CompareResult
from ._runners import HarnessRunner, NativeRunner, ScanRunner
from ._setup import RunSetup, build, configure, describe_error, preflight, settings_for
from ._spec import ModelSpec, Settings
from ._stream import PairStream
from ._stream_run import KEEP_VALUES, Track, train_side_by_side
from ._tolerance import ORACLE_KEY, Tolerances
from ._trajectory import Trajectory

SCAN_CHUNK_VALUES = 5_000_000
"""A large run's scan holds at most this many values of outputs per call (20 MB)."""


def run_model(
    spec: ModelSpec,
    factories: Sequence[tuple[str, ImplementationFactory]],
    options: RunOptions | None = None,
    *,
    reference_factory: ImplementationFactory | None = None,
    versions: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> CompareResult:
    """Train every implementation of `spec` in every selected loop and compare.

    **Arguments:**

    - `spec`: the model.
    - `factories`: `(label, config -> implementation)` pairs; the label names the
      implementation in error messages (a registry name, or what the user wrote).
    - `options`: the run's options.
    - `reference_factory`: the spec's reference implementation, when it is not among
      `factories` but must be trained aside (`spec.reference_mode`).
    - `versions`: the package versions to record.
    - `progress`: called with each trajectory's name before it trains.

    Bad options, specs and implementations raise `ValueError` or `TypeError` before
    anything is trained. A trajectory whose training raises is recorded in `errors` (the
    first line) and `errors_full` (the whole message), and the run does not agree.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"--model: expected a ModelSpec, got {type(spec).__name__}")
    options = RunOptions() if options is None else options
    bad_loops = [loop for loop in options.loops if loop not in LOOPS]
    if bad_loops or not options.loops:
        bad = bad_loops[0] if bad_loops else ""
        raise ValueError(f"unknown loop {bad!r}; expected one of {', '.join(LOOPS)}")
    if not factories:
        raise ValueError("no implementation selected; expected at least one")
    settings = settings_for(spec, options)
    config = configure(spec, settings)
    run = RunSetup(spec, options, settings, config)
    impls = [(label, build(label, factory, config, spec)) for label, factory in factories]
    names = [impl.name for _, impl in impls]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ValueError(f"two implementations are named {duplicate!r}; names must be unique")
    shapes = preflight(spec, run, impls)
    tolerances = spec.tolerances_for(config, run.optimizer)
    if options.judged_by is not None:
        tolerances = tolerances.overridden(options.judged_by)
    if options.data_parallel is not None:
        result = run_data_parallel(spec, run, factories, impls, tolerances, progress)
    else:
        result = _run_side_by_side(
            spec, run, impls, factories, tolerances, shapes, progress, reference_factory
        )
    result.config = _resolved(spec, options, settings, config, run)
    result.versions = dict(versions or {})
    return result


def _run_side_by_side(
    spec: ModelSpec,
    run: RunSetup,
    impls: Sequence[tuple[str, Implementation]],
    factories: Sequence[tuple[str, ImplementationFactory]],
    tolerances: Tolerances,
    shapes: Mapping[str, tuple[int, ...]],
    progress: Progress | None,
    reference_factory: ImplementationFactory | None,
) -> CompareResult:
    options, settings, config = run.options, run.settings, run.config
    names = [impl.name for _, impl in impls]
    reference = _reference_key(spec, options, names)
    aside = _reference_aside(spec, options, settings, names)
    ref_factory = None if aside is None else dict(factories).get(aside[0], reference_factory)
    per_step = unstack(run.batches)
    keys = list(run.keys) if run.keys is not None else [None] * len(per_step)
    values = sum(int(np.prod(s)) for s in shapes.values())
    tracks: list[Track] = []
    errors: dict[str, BaseException] = {}
    planned = [(impl, loop, config) for _, impl in impls for loop in options.loops]
    planned = [(i, lp, c) for i, lp, c in planned if lp != "native" or hasattr(i, "native_loop")]
    if aside is not None and ref_factory is not None:
        ref_name, ref_mode = aside
        ref_config = configure(spec, replace(settings, mode=ref_mode))
        reference = f"{ref_name}/{ref_mode}"
        planned.insert(0, (build(ref_name, ref_factory, ref_config, spec), ref_mode, ref_config))
    record = options.keep == "trajectories" or (
        options.keep == "auto" and values * (len(per_step) + 1) * len(planned) <= KEEP_VALUES
    )
    chunk = None if record else max(1, SCAN_CHUNK_VALUES // max(values, 1))
    for impl, loop, cfg in planned:
        key = f"{impl.name}/{loop}"
        if progress:
            progress(key)
        try:
            with contained(f"training {key}"):
                tracks.append(Track(key, impl, _runner(run, impl, loop, cfg, record, chunk)))
        except Exception as e:  # reported, not raised: a failing framework is a finding
            errors[key] = e
    order = _order(spec, run, tracks, reference)
    keys_run = [t.key for t in tracks] + ([ORACLE_KEY] if spec.oracle is not None else [])
    if reference not in keys_run and tracks:  # the reference failed: compare with the first
        reference = tracks[0].key
    plans = plan_pairs(keys_run, reference, tolerances, aside=aside is not None)
    streams = {
        (p.a, p.b): PairStream(
            (p.a, p.b), p.tolerance, p.loss_tolerance, order, kind=p.kind, judged=p.judged
        )
        for p in plans
    }
    lockstep = _lockstep(run, tracks, reference, tolerances, order, aside is not None)
    oracle = None
    if spec.oracle is not None:
        oracle = (ORACLE_KEY, _oracle_steps(spec, run))
    done = train_side_by_side(
        tracks, per_step, keys, streams, lockstep=lockstep, oracle=oracle, record=record
    )
    errors.update({t.key: t.error for t in tracks if t.error is not None})
    alive = {t.key: t for t in tracks if t.alive}
    pairs = [
        s.result()
        for (a, b), s in streams.items()
        if (a in alive or a == ORACLE_KEY) and (b in alive or b == ORACLE_KEY)
    ]
    lockstep_results = {} if lockstep is None else lockstep.results()
    pairs = explain_partings(pairs, lockstep_results, reference)
    trajectories: dict[str, Trajectory] = {
        k: t.recorded
        if t.recorded is not None
        else Trajectory(loss=[np.asarray(v) for v in t.losses])
        for k, t in alive.items()
    }
    if oracle is not None:
        losses = [np.asarray(v) for v in done.oracle_losses]
        trajectories[ORACLE_KEY] = done.oracle or Trajectory(loss=losses)
    outputs, evals = {}, {}
    if spec.evaluation is not None:
        for key, track in alive.items():
            try:
                with contained(f"evaluating {key}"):
                    outputs[key], evals[key] = run.evaluate_values(track.impl, *track.final())
            except Exception as e:
                errors[key] = e
    eval_diffs = eval_differences(outputs, reference)
    described = {k: describe_error(e) for k, e in errors.items()}
    analyses = run_analyses(
        run, impls, factories, trajectories if record else {}, outputs, evals, reference, progress
    )
    return CompareResult(
        config={},
        trajectories={k: v for k, v in trajectories.items() if k not in errors},
        errors={k: v[0] for k, v in described.items()},
        reference=reference,
        pairs=[p for p in pairs if p.a not in errors and p.b not in errors],
        versions={},
        model=spec.name,
        evals=evals,
        eval_diffs=eval_diffs,
        eval_atol=None if spec.evaluation is None else spec.evaluation.tolerance.atol,
        eval_atols={k: t.atol for k, t in tolerances.evals.items() if k in trajectories},
        analyses=analyses,
        errors_full={k: v[1] for k, v in described.items() if v[1] != v[0]},
        kept="trajectories" if record else "summaries",
        windows=done.windows,
        order=order.source,
        lockstep_errors={
            k: describe_error(e)[0]
            for k, e in ({} if lockstep is None else lockstep.errors).items()
        },
    )


def _runner(
    run: RunSetup, impl: Implementation, loop: str, config: Any, record: bool, chunk: int | None
) -> Any:
    params, state = run.initial(impl, config)
    tx = run.optimizer.make()
    if loop == "native":
        return NativeRunner(impl, params, state, tx)
    if loop == "scan":
        return ScanRunner(
            impl, params, state, tx, run.spec.loss, run.batches, run.keys, run.spec.inputs,
            chunk=chunk, host=record,
        )  # fmt: skip
    return HarnessRunner(impl, params, state, tx, run.spec.loss, run.spec.inputs)


def _order(spec: ModelSpec, run: RunSetup, tracks: Sequence[Track], reference: str) -> LeafOrder:
    """The data-flow order of the reference implementation's forward pass."""
    track = next((t for t in tracks if t.key == reference), tracks[0] if tracks else None)
    if track is None:
        return LeafOrder()
    params, state = run.initial(track.impl, run.config)
    x = spec.model_inputs(unstack(run.batches)[0])
    key = None if run.keys is None else run.keys[0]
    return forward_order(track.impl, params, state, x, key)


def _lockstep(
    run: RunSetup,
    tracks: Sequence[Track],
    reference: str,
    tolerances: Tolerances,
    order: LeafOrder,
    aside: bool,
) -> Lockstep | None:
    """The lockstep of every other implementation's harness loop with the reference's."""
    if not run.options.lockstep or aside:
        return None
    ref_impl, _, _ = reference.rpartition("/")
    harness = {t.key: t for t in tracks if t.key.endswith("/harness")}
    ref = harness.get(f"{ref_impl}/harness")
    others = [(k, t.runner) for k, t in harness.items() if t is not ref]
    if ref is None or not others:
        return None
    bounds = {k: tolerances.for_pair(k, ref.key) for k, _ in others}
    return Lockstep(
        ref.runner, others, ref.key, run.optimizer.make(), run.spec.loss, run.spec.inputs,
        bounds, order, delegate=not run.options.lockstep_every_step,
    )  # fmt: skip


def _oracle_steps(spec: ModelSpec, run: RunSetup) -> Iterator[Mapping[str, Any]]:
    assert spec.oracle is not None
    out = spec.oracle(run.batches, run.config, run.optimizer)
    return steps_of(out) if isinstance(out, Trajectory) else iter(out)


def _reference_key(spec: ModelSpec, options: RunOptions, names: Sequence[str]) -> str:
    """The reference trajectory's key, checked before anything trains."""
    loop = "harness" if "harness" in options.loops else options.loops[0]
    if options.reference is None:
        ref = spec.reference if spec.reference in names else names[0]
        return f"{ref}/{loop}"
    key = options.reference if "/" in options.reference else f"{options.reference}/{loop}"
    impl, _, ref_loop = key.partition("/")
    valid = (impl in names and ref_loop in options.loops) or (
        key == ORACLE_KEY and spec.oracle is not None
    )
    if not valid:
        choices = [f"{n}/{lp}" for n in names for lp in options.loops]
        raise ValueError(
            f"--reference: no trajectory {options.reference!r} in this run; expected an "
            f"implementation ({', '.join(names)}) or one of {', '.join(choices)}"
        )
    return key


def _reference_aside(
    spec: ModelSpec, options: RunOptions, settings: Settings, names: Sequence[str]
) -> tuple[str, str] | None:
    """(name, mode) of a reference to train aside, or `None` (see `ModelSpec.reference_mode`)."""
    if options.reference is not None or spec.reference is None or spec.reference_mode is None:
        return None
    if settings.mode == spec.reference_mode and spec.reference in names:
        if "harness" in options.loops:
            return None
    return spec.reference, spec.reference_mode


def _resolved(
    spec: ModelSpec, options: RunOptions, settings: Settings, config: Any, run: RunSetup
) -> dict[str, Any]:
    """The run's config for the JSON: every option as resolved, then the model's own keys."""
    first = unstack(run.batches)[0]
    leaf = jax.tree.leaves(first)[0]
    from dataclasses import asdict

    out: dict[str, Any] = {
        "model": spec.name,
        "mode": settings.mode,
        "loops": list(options.loops),
        "steps": run.steps,
        "batch": int(np.shape(leaf)[0]),
        "optimizer": run.optimizer.name,
        "lr": run.optimizer.learning_rate,
        "seed": options.seed,
        "data": options.data_source,
        "data_dtype": None if options.data is None else str(np.asarray(options.data).dtype),
        "reference": options.reference,
        "tolerance": None if options.judged_by is None else options.judged_by.to_json(),
        "devices": options.devices,
        "parallel": None if options.devices == 1 else options.parallel,
        "processes": jax.process_count(),
        "lockstep": options.lockstep,
        **settings.values,
        "options": dict(settings.values),  # the model's own options, also spread above
        "optimizer_hyperparameters": asdict(run.optimizer),
    }
    if spec.describe is not None:
        out.update(spec.describe(config, settings, run.batches))
    return out


__all__ = ["PairResult", "run_model"]
