"""One comparison run of any model: build the implementations, train them in every loop,
compare every trajectory with the reference, evaluate, analyse."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._compare import PairResult, compare
from ._harness import LOOPS, run_loop, unstack
from ._keys import step_keys
from ._optim import OptimizerConfig
from ._parallel import (
    DATA_AXIS,
    Parallel,
    check_batches_divide,
    check_same_on_every_process,
    data_mesh,
    inject_batch_fault,
    run_parallel,
)
from ._plugin import contained  # the user's code may call sys.exit()
from ._protocol import REQUIRED, Implementation, ImplementationFactory, Params, State
from ._replicas import replica_report
from ._spec import AnalysisResult, Batches, ModelSpec, Settings
from ._tolerance import ORACLE_KEY, Tolerance, Tolerances
from ._trajectory import Trajectory

Progress = Callable[[str], None]
"""Called with each trajectory's name before it trains."""


@dataclass(frozen=True)
class RunOptions:
    """The generic options of one run (the model's own are in `values`).

    **Arguments:**

    - `loops`: which loops: `"harness"` (jitted generic step), `"native"` (the framework's
      own idiom), `"scan"` (all steps in one `lax.scan`).
    - `steps`, `batch`: `None` for the model's defaults.
    - `optimizer`, `lr`: the optax optimizer and its learning rate (`None`: the model's).
    - `seed`: seeds the data, the init and the per-step keys.
    - `mode`: one of the model's modes (`None`: its first).
    - `data`, `data_source`: the user's own data and where it came from.
    - `values`: the model's own options by key (missing ones take their defaults).
    - `reference`: the trajectory (`"impl/loop"`) or implementation (its harness run) to
      compare everything with (`None`: the spec's reference).
    - `tolerance`: judge every float32 pair by this tolerance instead of the spec's.
    """

    loops: tuple[str, ...] = LOOPS
    steps: int | None = None
    batch: int | None = None
    optimizer: str = "sgd"
    lr: float | None = None
    seed: int = 0
    mode: str | None = None
    data: np.ndarray | None = field(default=None, compare=False)
    data_source: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None
    tolerance: Tolerance | None = None
    parallel: Parallel | None = None


@dataclass
class CompareResult:
    """Everything a comparison run produced; `to_json` gives the documented contract."""

    config: dict[str, Any]
    trajectories: dict[str, Trajectory]
    errors: dict[str, str]
    reference: str
    pairs: list[PairResult]
    versions: dict[str, str]
    model: str = ""
    evals: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per trajectory, the held-out metrics after the last step (models with an eval)."""
    eval_diffs: dict[str, float] = field(default_factory=dict)
    """Per trajectory, max |difference| of its held-out outputs from the reference's."""
    eval_atol: float | None = None
    eval_atols: dict[str, float] = field(default_factory=dict)
    """Per trajectory, a bound of its own for its held-out outputs (`Tolerances.evals`)."""
    analyses: list[AnalysisResult] = field(default_factory=list)
    errors_full: dict[str, str] = field(default_factory=dict)
    """Each failure's whole message (`errors` holds its first line)."""

    @property
    def agree(self) -> bool:
        """No failure, every pair agrees or differs as expected (held-out outputs too), and
        every analysis is content."""
        pairs_ok = all(p.ok and not self._eval_off(p) for p in self.pairs)
        return not self.errors and pairs_ok and all(a.ok for a in self.analyses)

    def _eval_off(self, pair: PairResult) -> bool:
        atol = self.eval_atol_for(pair.a)
        if atol is None or pair.tolerance.expected:
            return False
        return self.eval_diffs.get(pair.a, 0.0) > atol

    def eval_atol_for(self, trajectory: str) -> float | None:
        """The bound of `trajectory`'s held-out outputs (`None`: the model has no eval)."""
        if self.eval_atol is None:
            return None
        return self.eval_atols.get(trajectory, self.eval_atol)

    def analysis(self, key: str) -> Any:
        """The payload of the analysis stored under `key` (e.g. `"drift"`), or `None`."""
        return next((a.payload for a in self.analyses if a.key == key), None)

    def counts(self) -> dict[str, int]:
        """How many trajectories are the reference, agree, diverge, differ as expected and
        failed."""
        expected = sum(p.expected for p in self.pairs)
        diverging = sum(not p.ok or self._eval_off(p) for p in self.pairs)
        return {
            "reference": 1,
            "agree": len(self.pairs) - diverging - expected,
            "diverge": diverging,
            "expected": expected,
            "failed": len(self.errors),
        }

    def to_json(self, arrays: bool = True) -> dict[str, Any]:
        """The JSON contract. `arrays=False` leaves each trajectory's loss, params and state
        out (`save_run` writes them from the trajectories themselves)."""
        trajectories = {k: t.to_json() if arrays else {} for k, t in self.trajectories.items()}
        for k, ev in self.evals.items():
            trajectories[k]["eval"] = ev
        comparison: dict[str, Any] = {
            "reference": self.reference,
            "agree": self.agree,
            "counts": self.counts(),
            "pairs": [p.to_json() for p in self.pairs],
        }
        if self.eval_atol is not None:
            comparison["eval"] = {"atol": self.eval_atol, "max_abs": self.eval_diffs}
            if self.eval_atols:
                comparison["eval"]["atol_by_trajectory"] = self.eval_atols
        for a in self.analyses:
            comparison[a.key] = a.payload
            if not a.ok:
                comparison.setdefault("failed_analyses", []).append(a.key)
        out = {
            "model": self.model,
            "config": self.config,
            "versions": self.versions,
            "trajectories": trajectories,
            "errors": self.errors,
            "comparison": comparison,
        }
        if self.errors_full:
            out["errors_full"] = self.errors_full
        return out


def package_versions(distributions: Mapping[str, str]) -> dict[str, str]:
    """Installed versions: report key -> version of the named distribution."""
    out = {}
    for key, dist in distributions.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = "not installed"
    return out


def build(
    label: str, factory: ImplementationFactory, config: Any, spec: ModelSpec
) -> Implementation:
    """Call `factory(config)` and check that the result follows the protocol for `spec`.

    Raises `TypeError` or `ValueError` naming the implementation (`label`) and what is wrong.
    """
    if not callable(factory):
        raise TypeError(
            f"implementation {label}: expected a callable (config -> implementation), got "
            f"{type(factory).__name__}"
        )
    try:
        with contained(f"implementation {label}: its factory"):
            impl = factory(config)
    except Exception as e:
        raise ValueError(
            f"implementation {label}: building it from the config raised {_describe(e)[0]}; "
            "expected a factory that takes the model's config"
        ) from e
    missing = [m for m in REQUIRED if not hasattr(impl, m)]
    if missing:
        raise TypeError(
            f"implementation {label} does not follow the protocol: missing {', '.join(missing)}"
        )
    if impl.model != spec.name:
        raise ValueError(
            f"implementation {label} ({impl.name}) declares model {impl.model!r}, but this run "
            f"trains {spec.name!r}; expected model = {spec.name!r}"
        )
    return impl


def settings_for(spec: ModelSpec, options: RunOptions) -> Settings:
    """The model's settings for these options: its mode checked, its option defaults filled."""
    modes = tuple(spec.modes)
    mode = options.mode if options.mode is not None else (modes[0] if modes else "")
    if mode != "" and mode not in modes:
        expected = ", ".join(modes) if modes else "none (this model has no modes)"
        raise ValueError(f"{spec.name}: unknown mode {mode!r}; expected one of {expected}")
    known = {o.key: o.default for o in spec.options}
    unknown = sorted(set(options.values) - set(known))
    if unknown:
        raise ValueError(
            f"{spec.name}: unknown option {unknown[0]!r}; the model's options are "
            f"{', '.join(known) or 'none'}"
        )
    if options.data is not None and spec.user_data is None:
        raise ValueError(f"--data: model {spec.name} takes no user data (it brings its own)")
    return Settings(
        mode=mode,
        steps=options.steps,
        batch=options.batch,
        seed=options.seed,
        optimizer=options.optimizer,
        data=options.data,
        values={**known, **options.values},
    )


class RunSetup:
    """One run's shared pieces: the spec, settings, config, optimizer, data and keys.

    Build one with [`setup_run`][]; `initial(impl, config)` gives an implementation's
    initial native values, `train(impl, loop)` trains it.
    """

    def __init__(
        self, spec: ModelSpec, options: RunOptions, settings: Settings, config: Any
    ) -> None:
        self.spec = spec
        self.options = options
        self.settings = settings
        self.config = config
        lr = spec.learning_rate if options.lr is None else options.lr
        self.optimizer = OptimizerConfig(options.optimizer, learning_rate=lr)
        if options.data is not None:
            assert spec.user_data is not None
            self.batches = spec.user_data(config, np.asarray(options.data), settings)
        else:
            self.batches = spec.data(config, settings)
        self.batches = inject_batch_fault(self.batches)
        self.steps = len(unstack(self.batches))
        self.keys = step_keys(options.seed, self.steps) if spec.random else None
        self.held_out = None if spec.evaluation is None else spec.evaluation.data(config, settings)

    def initial(self, impl: Implementation, config: Any) -> tuple[Params, State]:
        if self.spec.init is not None:
            return self.spec.init(impl, config, self.batches, self.options.seed)
        first = self.spec.model_inputs(unstack(self.batches)[0])
        return impl.init(jax.random.key(self.options.seed), first)

    def train(
        self,
        impl: Implementation,
        loop: str,
        config: Any | None = None,
        seed: int | None = None,
        batches: Batches | None = None,
    ) -> Trajectory:
        params, state = self.initial(impl, self.config if config is None else config)
        batches = self.batches if batches is None else batches
        keys = self.keys
        if keys is not None and (seed is not None or batches is not self.batches):
            seed = self.options.seed if seed is None else seed
            keys = step_keys(seed, len(unstack(batches)))
        return run_loop(
            loop,
            impl,
            params,
            state,
            self.optimizer.make(),
            batches,
            self.spec.loss,
            self.spec.inputs,
            keys,
        )

    def train_parallel(
        self, impl: Implementation, loop: str, config: Any, parallel: Parallel, mesh: Any
    ) -> Any:
        params, state = self.initial(impl, config)
        return run_parallel(
            loop,
            impl,
            params,
            state,
            self.optimizer.make(),
            self.batches,
            self.spec.loss,
            parallel=parallel,
            mesh=mesh,
            inputs=self.spec.inputs,
            keys=self.keys,
            reduction=self.spec.loss_reduction,
        )

    def evaluate(
        self, impl: Implementation, trajectory: Trajectory
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Held-out outputs and metrics after the last step (the final canonical values
        loaded with `from_canonical`, the model called with `train=False`)."""
        evaluation = self.spec.evaluation
        assert evaluation is not None
        final = trajectory.final()
        params = {k[7:]: jnp.asarray(v) for k, v in final.items() if k.startswith("params.")}
        state = {k[6:]: jnp.asarray(v) for k, v in final.items() if k.startswith("state.")}
        native_params, native_state = impl.from_canonical(params, state)
        x = self.spec.model_inputs(self.held_out)
        outputs = np.asarray(
            jax.jit(lambda p, s, x: impl.apply(p, s, x, train=False)[0])(
                native_params, native_state, x
            )
        )
        return outputs, evaluation.metrics(outputs, self.held_out)


@dataclass
class AnalysisContext:
    """What an extra analysis sees of a finished run, and how it can train more.

    **Fields:** `spec`, `settings`, `config`, `optimizer`, `batches`, `impls` (the run's
    implementations), `trajectories`, `outputs` (held-out outputs by trajectory), `evals`,
    `reference` (its key), `progress`, and `factories` (label -> factory, to rebuild an
    implementation with another config).
    """

    spec: ModelSpec
    settings: Settings
    config: Any
    optimizer: OptimizerConfig
    batches: Batches
    impls: list[Implementation]
    trajectories: dict[str, Trajectory]
    outputs: dict[str, np.ndarray]
    evals: dict[str, dict[str, float]]
    reference: str
    factories: dict[str, ImplementationFactory]
    progress: Progress | None
    _run: RunSetup

    def train(
        self,
        impl: Implementation,
        config: Any,
        loop: str = "harness",
        seed: int | None = None,
        batches: Batches | None = None,
    ) -> Trajectory:
        """Train `impl` (built with `config`) in one loop, from the model's initial values;
        `seed` picks other per-step keys (random models), `batches` other data."""
        return self._run.train(impl, loop, config, seed, batches)

    @property
    def held_out(self) -> Any:
        """The held-out batch of the model's evaluation (`None` without one)."""
        return self._run.held_out

    def evaluate(
        self, impl: Implementation, trajectory: Trajectory
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Held-out outputs and metrics of a trajectory of `impl`."""
        return self._run.evaluate(impl, trajectory)

    def rebuild(self, name: str, config: Any) -> Implementation | None:
        """The implementation called `name`, built anew with `config` (`None`: unknown)."""
        factory = self.factories.get(name)
        return None if factory is None else build(name, factory, config, self.spec)


def _describe(e: BaseException) -> tuple[str, str]:
    """(first line, whole message) of an exception, each led by its type."""
    text = str(e)
    first_line = next(iter(text.splitlines()), "")
    short = f"{type(e).__name__}: {first_line}" if first_line else type(e).__name__
    return short, f"{type(e).__name__}: {text}" if text else type(e).__name__


def _preflight(spec: ModelSpec, run: RunSetup, impls: Sequence[tuple[str, Implementation]]) -> None:
    """Check every implementation's init and canonical names and shapes, before training.

    A bad implementation is a bad argument (exit 2), not a divergence: it raises
    `ValueError` naming the implementation, the leaf and what was expected.
    """
    declared = spec.canonical_names(run.config)
    shapes: dict[str, tuple[str, dict[str, tuple[int, ...]]]] = {}
    for label, impl in impls:
        try:
            with contained(f"implementation {label}: its init"):
                params, state = run.initial(impl, run.config)
                cparams, cstate = impl.to_canonical(params, state)
        except Exception as e:
            raise ValueError(
                f"implementation {label} ({impl.name}): init or to_canonical raised "
                f"{_describe(e)[0]}"
            ) from e
        for group, values, names in (
            ("params", cparams, declared[0]),
            ("state", cstate, declared[1]),
        ):
            if not isinstance(values, Mapping):
                raise TypeError(
                    f"implementation {label} ({impl.name}): to_canonical must return two "
                    f"dicts (params, state), got {type(values).__name__} for {group}"
                )
            if names is not None and sorted(values) != names:
                missing = sorted(set(names) - set(values))
                extra = sorted(set(values) - set(names))
                what = f"missing {missing}" if missing else f"unexpected {extra}"
                raise ValueError(
                    f"implementation {label} ({impl.name}): canonical {group} {what}; model "
                    f"{spec.name} expects {names}"
                )
            got = {k: tuple(np.shape(v)) for k, v in values.items()}
            if group in shapes:
                other, expected = shapes[group]
                for k, shape in got.items():
                    if k in expected and expected[k] != shape:
                        raise ValueError(
                            f"implementation {label} ({impl.name}): canonical {group}.{k} has "
                            f"shape {shape}; {other} gives {expected[k]}"
                        )
            else:
                shapes[group] = (f"{impl.name}", got)


def setup_run(spec: ModelSpec, options: RunOptions = RunOptions()) -> RunSetup:
    """The settings, config, optimizer, data and keys of a run of `spec` with `options`."""
    settings = settings_for(spec, options)
    return RunSetup(spec, options, settings, spec.configure(settings))


def run_model(
    spec: ModelSpec,
    factories: Sequence[tuple[str, ImplementationFactory]],
    options: RunOptions = RunOptions(),
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
    bad_loops = [loop for loop in options.loops if loop not in LOOPS]
    if bad_loops:
        raise ValueError(f"unknown loop {bad_loops[0]!r}; expected one of {', '.join(LOOPS)}")
    if not factories:
        raise ValueError("no implementation selected; expected at least one")
    settings = settings_for(spec, options)
    config = spec.configure(settings)
    run = RunSetup(spec, options, settings, config)
    impls = [(label, build(label, factory, config, spec)) for label, factory in factories]
    names = [impl.name for _, impl in impls]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ValueError(f"two implementations are named {duplicate!r}; names must be unique")
    _preflight(spec, run, impls)

    trajectories: dict[str, Trajectory] = {}
    errors: dict[str, str] = {}
    errors_full: dict[str, str] = {}
    outputs: dict[str, np.ndarray] = {}
    evals: dict[str, dict[str, float]] = {}

    def train(key: str, impl: Implementation, loop: str, config: Any) -> None:
        if progress:
            progress(key)
        try:
            with contained(f"training {key}"):
                trajectories[key] = run.train(impl, loop, config)
                if spec.evaluation is not None:
                    outputs[key], evals[key] = run.evaluate(impl, trajectories[key])
        except Exception as e:  # reported, not raised: a failing framework is a finding
            errors[key], errors_full[key] = _describe(e)

    replicas: dict[str, list[dict[str, np.ndarray]]] = {}
    parallel = options.parallel
    if parallel is not None:
        mesh = data_mesh(parallel.devices)
        check_batches_divide(run.batches, parallel.devices)  # before anything trains
        check_same_on_every_process(run.batches)
        # shard_map: each framework's own cross-device argument; jit and unsynced: none.
        pconfig = config
        if parallel.synced and spec.cross_device is not None:
            pconfig = spec.cross_device(config, DATA_AXIS)
        by_name = {impl.name: impl for _, impl in impls}
        ref_name = _single_device_reference(spec, options, names)
        reference = f"{ref_name}/{SINGLE_DEVICE}"
        train(reference, by_name[ref_name], "harness", config)
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
                    errors[f"{impl.name}/{loop}"], errors_full[f"{impl.name}/{loop}"] = _describe(e)
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
                        if spec.evaluation is not None:
                            outputs[key], evals[key] = run.evaluate(impl, trajectories[key])
                except Exception as e:  # reported, not raised, as on one device
                    errors[key], errors_full[key] = _describe(e)
    else:
        reference = _reference_key(spec, options, names)
        aside = _reference_aside(spec, options, settings, names)
        ref_factory = None if aside is None else dict(factories).get(aside[0], reference_factory)
        if aside is not None and ref_factory is not None:
            ref_name, ref_mode = aside
            factory = ref_factory
            ref_config = spec.configure(replace(settings, mode=ref_mode))
            reference = f"{ref_name}/{ref_mode}"
            train(reference, build(ref_name, factory, ref_config, spec), "harness", ref_config)
        for _, impl in impls:
            for loop in options.loops:
                if loop == "native" and not hasattr(impl, "native_loop"):
                    continue  # a user's implementation may have no native loop
                train(f"{impl.name}/{loop}", impl, loop, config)
    if spec.oracle is not None:
        trajectories[ORACLE_KEY] = spec.oracle(run.batches, config, run.optimizer)
    if reference not in trajectories:  # the reference failed: compare with the first run
        reference = next(iter(trajectories), reference)
    tolerances = spec.tolerances_for(config, run.optimizer)
    if options.tolerance is not None:
        tolerances = tolerances.overridden(options.tolerance)
    pairs = []
    for k, t in trajectories.items():
        if k == reference:
            continue
        tolerance, loss_tolerance = tolerances.for_pair(k, reference)
        if parallel is not None and parallel.mode in tolerances.devices:
            if not tolerance.expected and k != ORACLE_KEY:
                tolerance, loss_tolerance = tolerances.devices[parallel.mode], None
        pairs.append(
            compare(
                t,
                trajectories[reference],
                tolerance,
                names=(k, reference),
                loss_tolerance=loss_tolerance,
            )
        )
    eval_diffs = {
        k: float(np.max(np.abs(np.float64(v) - outputs[reference])))
        for k, v in outputs.items()
        if k != reference and reference in outputs
    }
    context = AnalysisContext(
        spec,
        settings,
        config,
        run.optimizer,
        run.batches,
        [impl for _, impl in impls],
        trajectories,
        outputs,
        evals,
        reference,
        {impl.name: factory for (_, factory), (_, impl) in zip(factories, impls, strict=True)},
        progress,
        run,
    )
    analyses = [a for a in (analysis(context) for analysis in spec.analyses) if a is not None]
    if replicas:
        analyses.append(replica_report(replicas, trajectories[reference], reference))
    return CompareResult(
        config=_resolved(spec, options, settings, config, run),
        trajectories=trajectories,
        errors=errors,
        reference=reference,
        pairs=pairs,
        versions=dict(versions or {}),
        model=spec.name,
        evals=evals,
        eval_diffs=eval_diffs,
        eval_atol=None if spec.evaluation is None else spec.evaluation.tolerance.atol,
        eval_atols=_eval_atols(tolerances, trajectories, reference, parallel),
        analyses=analyses,
        errors_full={k: v for k, v in errors_full.items() if v != errors[k]},
    )


def _eval_atols(
    tolerances: Tolerances,
    trajectories: Mapping[str, Trajectory],
    reference: str,
    parallel: Parallel | None,
) -> dict[str, float]:
    """Per trajectory, a bound of its own for its held-out outputs, where it has one."""
    out = {k: t.atol for k, t in tolerances.evals.items() if k in trajectories}
    if parallel is not None and parallel.mode in tolerances.devices_eval:
        bound = tolerances.devices_eval[parallel.mode].atol
        out.update({k: max(bound, out.get(k, 0.0)) for k in trajectories if k != reference})
    return out


SINGLE_DEVICE = "1-device"
"""The loop name of a data-parallel run's reference: the harness step on one device."""


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
        "tolerance": None if options.tolerance is None else options.tolerance.to_json(),
        "devices": 1 if options.parallel is None else options.parallel.devices,
        "parallel": None if options.parallel is None else options.parallel.mode,
        "processes": jax.process_count(),
        **settings.values,
        "options": dict(settings.values),  # the model's own options, also spread above
        "optimizer_hyperparameters": asdict(run.optimizer),
    }
    if spec.describe is not None:
        out.update(spec.describe(config, settings, run.batches))
    return out
