"""Per-step cost of each model in every framework, on four paths.

Paths, for each implementation:

- `native`: the framework's own idiomatic jitted step (`nnx.jit`, `eqx.filter_jit`, Linen's
  `TrainState` under `jax.jit`, Haiku's `apply` under `jax.jit`, a hand-written `jax.jit`);
- `harness-pytree`: the generic harness step under `jax.jit`, on the framework's own pytrees;
- `harness`: the harness fast path, `FlatStep` (flat arrays, donated buffers);
- `scan`: the fast path's step as the body of one `lax.scan` over K steps.

Every time is a median over repeated samples taken round-robin across paths (so that drift
in the machine's speed hits all paths alike), each sample being K steps dispatched back to
back and then `block_until_ready`, right after one untimed call of the same path. Ratios are
to the workload's baseline, which each model's spec names (`BenchShape.baseline`), measured in
the same run: the hand-written pure-JAX `jax.jit` step for the bias adder; for mlp-bn, which
has no pure-JAX implementation, the generic step under `jax.jit` on Haiku's plain dicts (the
same dispatch path as a pure-JAX step). Every row names its baseline.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._registry import MODELS, implementations, load_spec, make
from ..core import FlatStep, Implementation, InputsFn, LossFn, OptimizerConfig, TrainStep, unstack


@dataclass(frozen=True)
class Workload:
    """One model at one shape: what to build, what to feed it, what to compare against.

    **Fields:**

    - `model`, `shape`: labels for the rows (`"bias-adder"`, `"B8xD4"`).
    - `size`: `"tiny"` (dispatch-bound) or `"large"` (compute- or memory-bound).
    - `impls`: the implementations to measure.
    - `make`: implementation name -> implementation.
    - `loss`, `inputs`: as for `TrainStep`.
    - `batches`: K batches stacked on axis 0, on the device (one sample is K steps).
    - `samples`: how many timed samples per path.
    - `baseline`: the (impl, path) every ratio is taken against.
    """

    model: str
    shape: str
    size: str
    impls: tuple[str, ...]
    make: Callable[[str], Implementation]
    loss: LossFn
    inputs: InputsFn | None
    batches: Any
    samples: int
    baseline: tuple[str, str]

    @property
    def steps(self) -> int:
        return int(jax.tree.leaves(self.batches)[0].shape[0])

    def first_input(self) -> jax.Array:
        batch = jax.tree.map(lambda a: a[0], self.batches)
        return jnp.asarray(batch if self.inputs is None else self.inputs(batch))


@dataclass(frozen=True)
class BenchOptions:
    """Which models and implementations to measure; `quick` is a smoke test under a minute.

    `models` defaults to every built-in model whose spec has bench shapes.
    """

    models: tuple[str, ...] | None = None
    impls: tuple[str, ...] | None = None  # None: every implementation of each model
    quick: bool = False
    seed: int = 0

    def model_names(self) -> tuple[str, ...]:
        if self.models is not None:
            return self.models
        return tuple(m for m in MODELS if load_spec(m).bench is not None)

    def workloads(self) -> list[Workload]:
        rng = np.random.default_rng(self.seed)
        out = []
        for model in self.model_names():
            spec = load_spec(model)
            if spec.bench is None:
                raise ValueError(f"bench: model {model} has no bench shapes in its spec")
            for shape in spec.bench(self.quick, rng):
                out.append(
                    Workload(
                        model=model,
                        shape=shape.label,
                        size=shape.size,
                        impls=self.selected(list(implementations(model)), shape.baseline[0]),
                        make=functools.partial(_make, model=model, config=shape.config),
                        loss=spec.loss,
                        inputs=spec.inputs,
                        batches=jax.tree.map(jnp.asarray, shape.batches),
                        samples=shape.samples,
                        baseline=shape.baseline,
                    )
                )
        return out

    def selected(self, available: Sequence[str], baseline: str) -> tuple[str, ...]:
        if self.impls is None:
            return tuple(available)
        if baseline not in self.impls:
            raise ValueError(f"bench: {baseline!r} is the baseline and must be included")
        return tuple(i for i in self.impls if i in available)


def _make(name: str, *, model: str, config: Any) -> Implementation:
    return make(name, config, model)


@dataclass
class Row:
    """One measurement: one implementation, one path, one model at one shape."""

    impl: str
    path: str
    model: str
    shape: str
    compile_s: float
    step_s_median: float
    step_s_p10: float
    step_s_p90: float
    ratio: float = float("nan")
    baseline: str = ""
    bandwidth_gbs: float | None = None
    peak_bytes: int | None = None
    size: str = "tiny"

    def to_json(self) -> dict[str, Any]:
        # `ratio_to_jax` is the JSON contract's old name of `ratio`, kept for readers of it;
        # the baseline is named in `baseline` (not always pure JAX).
        return asdict(self) | {"ratio_to_jax": self.ratio}


@dataclass
class _Case:
    impl: str
    path: str
    run: Callable[[], Any]  # K steps; returns something to block on
    steps: int  # steps per call of `run`
    peak: Callable[[], int | None] | None = None  # XLA's planned bytes, where it can tell
    first_call_s: float = 0.0
    samples: list[float] = field(default_factory=list)


def _block(x: Any) -> None:
    jax.block_until_ready(x)  # type: ignore[no-untyped-call]


def _cases(work: Workload, impl_name: str) -> list[_Case]:
    impl = work.make(impl_name)
    tx = OptimizerConfig("sgd").make()
    # Every path cycles through the same K batches: no cache favours one of them.
    batches = unstack(work.batches)
    params, state = impl.init(jax.random.key(0), work.first_input())
    k = work.steps
    cases = []

    native = impl.native_loop(params, state, tx)

    def run_native() -> Any:
        for batch in batches:
            loss = native.step(batch)
        return loss

    cases.append(_Case(impl_name, "native", run_native, k))

    step = jax.jit(TrainStep(impl, work.loss, tx, work.inputs))
    carry = [params, state, tx.init(params)]

    def run_pytree() -> Any:
        for batch in batches:
            *carry[:], loss = step(*carry, batch)
        return loss

    cases.append(_Case(impl_name, "harness-pytree", run_pytree, k, _peak(step, *carry, batches[0])))

    fast = FlatStep(impl, work.loss, tx, params, state, inputs=work.inputs)

    def run_fast() -> Any:
        for batch in batches:
            loss = fast(batch)
        return loss

    cases.append(
        _Case(impl_name, "harness", run_fast, k, _peak(fast.jitted, fast.leaves, batches[0]))
    )

    scan_fn = jax.jit(lambda leaves, xs: jax.lax.scan(fast.flat_step, leaves, xs), donate_argnums=0)
    scan_leaves = [jnp.array(leaf, copy=True) for leaf in fast.leaves]
    scan_state = {"leaves": scan_leaves}

    def run_scan() -> Any:
        scan_state["leaves"], losses = scan_fn(scan_state["leaves"], work.batches)
        return losses

    cases.append(_Case(impl_name, "scan", run_scan, k, _peak(scan_fn, scan_leaves, work.batches)))
    return cases


def _copy_case(work: Workload) -> tuple[_Case, int]:
    """A plain jitted copy of one batch's input (negated, so that XLA cannot elide it).

    It writes into a donated buffer, so it moves 2 x nbytes per call without allocating, like
    the training step, whose outputs are small.
    """
    copy = jax.jit(jnp.negative, donate_argnums=0)
    buffer = {"y": jnp.array(work.first_input(), copy=True)}

    def run_copy() -> Any:
        for _ in range(work.steps):
            buffer["y"] = copy(buffer["y"])
        return buffer["y"]

    return _Case("-", "copy", run_copy, work.steps), 2 * buffer["y"].nbytes


def _peak(jitted: Any, *args: Any) -> Callable[[], int | None]:
    """Bytes XLA plans for arguments, outputs and temporaries (aliased buffers counted once).

    Deferred: called after the timing, when the program is compiled already. The arguments'
    shapes are captured now, as donation may delete the arrays themselves later.
    """
    specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)  # type: ignore[no-untyped-call]

    def peak() -> int | None:
        try:
            m = jitted.lower(*specs).compile().memory_analysis()
            return int(
                m.argument_size_in_bytes
                + m.output_size_in_bytes
                + m.temp_size_in_bytes
                - m.alias_size_in_bytes
            )
        except Exception:  # not every backend reports it
            return None

    return peak


def _bytes_accessed(work: Workload) -> float:
    """Bytes the baseline implementation's harness step reads and writes (XLA's estimate)."""
    impl = work.make(work.baseline[0])
    tx = OptimizerConfig("sgd").make()
    params, state = impl.init(jax.random.key(0), work.first_input())
    step = jax.jit(TrainStep(impl, work.loss, tx, work.inputs))
    batch = jax.tree.map(lambda a: a[0], work.batches)
    cost = step.lower(params, state, tx.init(params), batch).compile().cost_analysis()
    if cost is None:
        raise RuntimeError("bench: this backend gives no cost analysis to compute bandwidth")
    return float(cost["bytes accessed"])


def measure(work: Workload, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Every path of every implementation of one workload; one row each."""
    cases: list[_Case] = []
    for impl in work.impls:
        cases += _cases(work, impl)
    copy_case, copy_bytes = _copy_case(work)
    cases.append(copy_case)
    label = f"{work.model} {work.shape}"
    for case in cases:
        if progress:
            progress(f"{label}: compiling {case.impl}/{case.path}")
        # Cold: identical programs would otherwise hit XLA's cache of the first one.
        jax.clear_caches()  # type: ignore[no-untyped-call]
        start = time.perf_counter()
        _block(case.run())  # trace, lower, compile, run
        case.first_call_s = time.perf_counter() - start
    for r in range(work.samples):
        if progress:
            progress(f"{label}: sample {r + 1}/{work.samples}")
        for case in cases:
            # One untimed call first: the previous path may have left XLA:CPU's worker threads
            # asleep (a Python-bound path does), and a 300-iteration scan then pays a wake-up
            # per iteration (measured: 0.1 us/step warm, 1 us after 10 ms idle). Every path
            # gets the same warm start. (In the first round it also recompiles what
            # `clear_caches` dropped.)
            _block(case.run())
            start = time.perf_counter()
            _block(case.run())
            case.samples.append((time.perf_counter() - start) / case.steps)
    bytes_step = _bytes_accessed(work)
    base = next(c for c in cases if (c.impl, c.path) == work.baseline)
    base_median = float(np.median(base.samples))
    rows = []
    for case in cases:
        samples = np.asarray(case.samples)
        median = float(np.median(samples))
        moved = copy_bytes if case.path == "copy" else bytes_step
        rows.append(
            Row(
                impl=case.impl,
                path=case.path,
                model=work.model,
                shape=work.shape,
                # Cold first call minus one steady call: trace, lower and compile.
                compile_s=max(case.first_call_s - median * case.steps, 0.0),
                step_s_median=median,
                step_s_p10=float(np.percentile(samples, 10)),
                step_s_p90=float(np.percentile(samples, 90)),
                ratio=median / base_median,
                baseline="/".join(work.baseline),
                bandwidth_gbs=moved / median / 1e9 if work.size == "large" else None,
                peak_bytes=None if case.peak is None else case.peak(),
                size=work.size,
            )
        )
    return rows


def run_bench(options: BenchOptions, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Measure every workload of the selected models; one row per (impl, path, shape)."""
    unknown = [m for m in options.model_names() if m not in MODELS]
    if unknown:
        raise ValueError(
            f"bench: unknown model {unknown[0]!r}; expected one of {', '.join(MODELS)}"
        )
    rows: list[Row] = []
    for work in options.workloads():
        rows += measure(work, progress)
    return rows
