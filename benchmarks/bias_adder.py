"""Per-step cost of the bias adder in every framework, on three paths.

Paths, for each implementation:

- `native`: the framework's own idiomatic jitted step (`nnx.jit`, `eqx.filter_jit`, Linen's
  `TrainState` under `jax.jit`, Haiku's `apply` under `jax.jit`, a hand-written `jax.jit`);
- `harness-pytree`: the generic harness step under `jax.jit`, on the framework's own pytrees;
- `harness`: the harness fast path, `shared.FlatStep` (flat arrays, donated buffers);
- `scan`: the fast path's step as the body of one `lax.scan` over K steps.

Every time is a median over repeated samples taken round-robin across paths (so that drift
in the machine's speed hits all paths alike), each sample being K steps dispatched back to
back and then `block_until_ready`, right after one untimed call of the same path. Ratios are
to `jax/native`, measured in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import shared

BASELINE = ("jax", "native")


@dataclass(frozen=True)
class Shape:
    name: str
    batch: int
    features: int
    steps_per_sample: int
    samples: int


@dataclass(frozen=True)
class BenchOptions:
    """Which shapes and implementations to measure; `quick` is a smoke test under a minute."""

    impls: tuple[str, ...] = tuple(shared.IMPLEMENTATIONS)
    quick: bool = False
    seed: int = 0

    def shapes(self) -> list[Shape]:
        if self.quick:
            return [Shape("tiny", 8, 4, 100, 11), Shape("large", 1024, 1024, 4, 7)]
        return [Shape("tiny", 8, 4, 300, 31), Shape("large", 4096, 4096, 3, 25)]


@dataclass
class Row:
    """One measurement: one implementation, one path, one shape."""

    impl: str
    path: str
    model: str
    shape: str
    compile_s: float
    step_s_median: float
    step_s_p10: float
    step_s_p90: float
    ratio_to_jax: float = float("nan")
    bandwidth_gbs: float | None = None
    peak_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Case:
    impl: str
    path: str
    run: Callable[[], Any]  # K steps; returns something to block on
    steps: int  # steps per call of `run`
    peak_bytes: int | None = None
    first_call_s: float = 0.0
    samples: list[float] = field(default_factory=list)


def _block(x: Any) -> None:
    jax.block_until_ready(x)  # type: ignore[no-untyped-call]


def _cases(impl_name: str, shape: Shape, xs: jax.Array) -> list[_Case]:
    config = shared.BiasAdderConfig(shape.features)
    impl = shared.make(impl_name, config)
    tx = shared.OptimizerConfig("sgd").make()
    batches = list(xs)  # every path cycles through the same K batches: no cache favours
    x = batches[0]
    params, state = impl.init(jax.random.key(0), x)
    k = shape.steps_per_sample
    cases = []

    native = impl.native_loop(params, state, tx)

    def run_native() -> Any:
        for batch in batches:
            loss = native.step(batch)
        return loss

    cases.append(_Case(impl_name, "native", run_native, k))

    step = jax.jit(shared.TrainStep(impl, shared.bias_adder_loss, tx))
    carry = [params, state, tx.init(params)]

    def run_pytree() -> Any:
        for batch in batches:
            *carry[:], loss = step(*carry, batch)
        return loss

    cases.append(_Case(impl_name, "harness-pytree", run_pytree, k, _peak(step, *carry, x)))

    fast = shared.FlatStep(impl, shared.bias_adder_loss, tx, params, state)

    def run_fast() -> Any:
        for batch in batches:
            loss = fast(batch)
        return loss

    cases.append(_Case(impl_name, "harness", run_fast, k, _peak(fast.jitted, fast.leaves, x)))

    scan_fn = jax.jit(lambda leaves, xs: jax.lax.scan(fast.flat_step, leaves, xs), donate_argnums=0)
    scan_leaves = [jnp.array(leaf, copy=True) for leaf in fast.leaves]
    scan_state = {"leaves": scan_leaves}

    def run_scan() -> Any:
        scan_state["leaves"], losses = scan_fn(scan_state["leaves"], xs)
        return losses

    cases.append(_Case(impl_name, "scan", run_scan, k, _peak(scan_fn, scan_leaves, xs)))
    return cases


def _peak(jitted: Any, *args: Any) -> int | None:
    """Bytes XLA plans for arguments, outputs and temporaries (aliased buffers counted once)."""
    try:
        m = jitted.lower(*args).compile().memory_analysis()
        return int(
            m.argument_size_in_bytes
            + m.output_size_in_bytes
            + m.temp_size_in_bytes
            - m.alias_size_in_bytes
        )
    except Exception:  # not every backend reports it
        return None


def _bytes_accessed(impl_name: str, shape: Shape, x: jax.Array) -> float:
    """Bytes the harness step reads and writes, from XLA's cost analysis."""
    impl = shared.make(impl_name, shared.BiasAdderConfig(shape.features))
    tx = shared.OptimizerConfig("sgd").make()
    params, state = impl.init(jax.random.key(0), x)
    step = jax.jit(shared.TrainStep(impl, shared.bias_adder_loss, tx))
    cost = step.lower(params, state, tx.init(params), x).compile().cost_analysis()
    if cost is None:
        raise RuntimeError("bench: this backend gives no cost analysis to compute bandwidth")
    return float(cost["bytes accessed"])


def run_bench(options: BenchOptions, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Measure every path of every implementation at every shape; one row each."""
    if "jax" not in options.impls:
        raise ValueError("bench: the 'jax' implementation is the baseline and must be included")
    rows: list[Row] = []
    rng = np.random.default_rng(options.seed)
    for shape in options.shapes():
        k = shape.steps_per_sample
        xs = jnp.asarray(rng.standard_normal((k, shape.batch, shape.features), np.float32))
        x = xs[0]
        cases: list[_Case] = []
        for impl in options.impls:
            cases += _cases(impl, shape, xs)
        # A plain jitted copy of one batch (negated, so that XLA cannot elide it), written
        # into a donated buffer: it moves 2 x nbytes per call without allocating, like the
        # training step, whose outputs are small.
        copy = jax.jit(jnp.negative, donate_argnums=0)
        buffer = {"y": jnp.array(x, copy=True)}

        def run_copy(copy: Any = copy, buffer: dict[str, Any] = buffer, k: int = k) -> Any:
            for _ in range(k):
                buffer["y"] = copy(buffer["y"])
            return buffer["y"]

        cases.append(_Case("-", "copy", run_copy, k))
        for case in cases:
            if progress:
                progress(f"{shape.name}: compiling {case.impl}/{case.path}")
            # Cold: identical programs would otherwise hit XLA's cache of the first one.
            jax.clear_caches()  # type: ignore[no-untyped-call]
            start = time.perf_counter()
            _block(case.run())  # trace, lower, compile, run
            case.first_call_s = time.perf_counter() - start
        for case in cases:  # warm again: clearing the caches dropped earlier executables
            _block(case.run())
        for r in range(shape.samples):
            if progress:
                progress(f"{shape.name}: sample {r + 1}/{shape.samples}")
            for case in cases:
                # One untimed call first: the previous path may have left XLA:CPU's worker
                # threads asleep (a Python-bound path does), and a 300-iteration scan then
                # pays a wake-up per iteration (measured: 0.1 us/step warm, 1 us after 10 ms
                # idle). Every path gets the same warm start.
                _block(case.run())
                start = time.perf_counter()
                _block(case.run())
                case.samples.append((time.perf_counter() - start) / case.steps)
        bytes_step = _bytes_accessed("jax", shape, x)
        base = next(c for c in cases if (c.impl, c.path) == BASELINE)
        base_median = float(np.median(base.samples))
        for case in cases:
            samples = np.asarray(case.samples)
            median = float(np.median(samples))
            moved = 2 * x.nbytes if case.path == "copy" else bytes_step
            rows.append(
                Row(
                    impl=case.impl,
                    path=case.path,
                    model="bias-adder",
                    shape=f"B{shape.batch}xD{shape.features}",
                    # Cold first call minus one steady call: trace, lower and compile.
                    compile_s=max(case.first_call_s - median * case.steps, 0.0),
                    step_s_median=median,
                    step_s_p10=float(np.percentile(samples, 10)),
                    step_s_p90=float(np.percentile(samples, 90)),
                    ratio_to_jax=median / base_median,
                    bandwidth_gbs=moved / median / 1e9 if shape.name == "large" else None,
                    peak_bytes=case.peak_bytes,
                )
            )
    return rows
