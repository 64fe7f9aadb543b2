"""Per-step cost of each model in every framework, on every path.

Paths, for each implementation:

- `native`: the framework's own idiomatic jitted step (`nnx.jit`, `eqx.filter_jit`, Linen's
  `TrainState` under `jax.jit`, Haiku's `apply` under `jax.jit`, a hand-written `jax.jit`);
- `native:NAME`: each of the framework's other recommended loops, from the implementation's
  `native_variants` (NNX's `nnx.cached_partial`, Equinox's `eqx.partition` outside
  `jax.jit`, ...);
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

from .._registry import MODELS
from ..core import (
    FlatStep,
    NativeLoop,
    OptimizerConfig,
    TrainStep,
    unstack,
)
from . import _roofline as roofline
from ._options import BenchOptions, Workload
from ._roofline import Passes


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
    depth: int | None = None
    leaves: int | None = None  # the implementation's params and state leaves
    passes: Passes | None = None  # large shapes, harness path: its kernels and batch traffic

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
    program: _Program | None = None  # a jitted path's program, compiled again only if asked
    roofline: bool = False  # count its passes over the batch (`roofline.analyse`)
    leaves: int | None = None
    first_call_s: float = 0.0
    samples: list[float] = field(default_factory=list)


def _block(x: Any) -> None:
    jax.block_until_ready(x)


def _cases(work: Workload, impl_name: str) -> list[_Case]:
    impl = work.make(impl_name)
    tx = OptimizerConfig("sgd").make()
    # Every path cycles through the same K batches: no cache favours one of them.
    batches = unstack(work.batches)
    params, state = impl.init(jax.random.key(0), work.first_input())
    k = work.steps
    cases = []
    loops = {"native": impl.native_loop(params, state, tx)}
    # The variants differ in dispatch only, which the large shapes of the standard run do not
    # show (every path is within noise there): they are timed at the tiny shapes, and at
    # both widths of `bench --depth`, where the per-layer cost is the question.
    if hasattr(impl, "native_variants") and (work.size == "tiny" or work.depth is not None):
        variants = impl.native_variants(params, state, tx)
        loops |= {f"native:{name}": loop for name, loop in variants.items()}
    for path, loop in loops.items():
        cases.append(_Case(impl_name, path, functools.partial(_run_loop, loop, batches), k))

    step = jax.jit(TrainStep(impl, work.loss, tx, work.inputs))
    carry = [params, state, tx.init(params)]

    def run_pytree() -> Any:
        for batch in batches:
            *carry[:], loss = step(*carry, batch)
        return loss

    cases.append(
        _Case(impl_name, "harness-pytree", run_pytree, k, _Program(step, *carry, batches[0]))
    )

    fast = FlatStep(impl, work.loss, tx, params, state, inputs=work.inputs)

    def run_fast() -> Any:
        for batch in batches:
            loss = fast(batch)
        return loss

    # The memory bound is the question at the standard run's large shapes; a depth run's
    # large width is set for the per-layer cost (its buffers are the size of its kernels).
    cases.append(
        _Case(
            impl_name,
            "harness",
            run_fast,
            k,
            _Program(fast.jitted, fast.leaves, batches[0]),
            roofline=work.size == "large" and work.depth is None,
        )
    )

    scan_fn = jax.jit(lambda leaves, xs: jax.lax.scan(fast.flat_step, leaves, xs), donate_argnums=0)
    scan_leaves = [jnp.array(leaf, copy=True) for leaf in fast.leaves]
    scan_state = {"leaves": scan_leaves}

    def run_scan() -> Any:
        scan_state["leaves"], losses = scan_fn(scan_state["leaves"], work.batches)
        return losses

    cases.append(
        _Case(impl_name, "scan", run_scan, k, _Program(scan_fn, scan_leaves, work.batches))
    )
    leaves = len(jax.tree.leaves((params, state)))
    for case in cases:
        case.leaves = leaves
    return cases


def _run_loop(loop: NativeLoop, batches: Sequence[Any]) -> Any:
    for batch in batches:
        loss = loop.step(batch)
    return loss


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


def _reduce_case(work: Workload) -> tuple[_Case, int]:
    """A plain jitted sum of one batch's input over its batch axis: the reduction bound.

    Every training step reduces over the batch (a mean, a gradient); on XLA:CPU a
    reduction streams memory more slowly than a copy, so the copy alone is too high a bound.
    """
    total = jax.jit(lambda x: jnp.sum(x, axis=0))
    x = work.first_input()

    def run_reduce() -> Any:
        for _ in range(work.steps):
            out = total(x)
        return out

    return _Case("-", "reduce", run_reduce, work.steps), x.nbytes


class _Program:
    """One jitted path's program, compiled again (once) only when asked, after the timing.

    XLA's planned bytes, its cost estimate and the optimised HLO all come from this one
    compilation. The arguments' shapes are captured now, as donation may delete the arrays
    themselves later.
    """

    def __init__(self, jitted: Any, *args: Any) -> None:
        self._jitted = jitted
        self._specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
        self._compiled: list[Any] = []  # empty until compiled; then [program or None]

    def compiled(self) -> Any:
        """The `jax.stages.Compiled`, or `None` where this backend cannot give one."""
        if not self._compiled:
            try:
                self._compiled.append(self._jitted.lower(*self._specs).compile())
            except Exception:  # not every backend and wrapper exposes its compiled program
                self._compiled.append(None)
        return self._compiled[0]

    def peak_bytes(self) -> int | None:
        """Bytes XLA plans for arguments, outputs and temporaries (aliased buffers once)."""
        try:
            m = self.compiled().memory_analysis()
            return int(
                m.argument_size_in_bytes
                + m.output_size_in_bytes
                + m.temp_size_in_bytes
                - m.alias_size_in_bytes
            )
        except Exception:  # not every backend reports it
            return None

    def bytes_accessed(self) -> float:
        """XLA's estimate of the bytes one call reads and writes."""
        compiled = self.compiled()
        cost = None if compiled is None else compiled.cost_analysis()
        if not cost:
            raise RuntimeError("bench: this backend gives no cost analysis to compute bandwidth")
        return float(cost["bytes accessed"])


def measure(work: Workload, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Every path of every implementation of one workload; one row each."""
    cases: list[_Case] = []
    for impl in work.impls:
        cases += _cases(work, impl)
    copy_case, copy_bytes = _copy_case(work)
    cases.append(copy_case)
    reference_bytes = {"copy": copy_bytes}
    if work.size == "large" and work.depth is None:
        reduce_case, reference_bytes["reduce"] = _reduce_case(work)
        cases.append(reduce_case)
    label = f"{work.model} {work.shape}"
    for case in cases:
        if progress:
            progress(f"{label}: compiling {case.impl}/{case.path}")
        if work.cold:  # identical programs would otherwise hit XLA's cache of the first one
            jax.clear_caches()
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
    large = work.size == "large"
    # The bytes of the baseline implementation's harness step (XLA's estimate), which every
    # path of this workload moves: the bandwidth's numerator.
    if large:
        program = next(
            c.program for c in cases if (c.impl, c.path) == (work.baseline[0], "harness-pytree")
        )
        bytes_step = program.bytes_accessed() if program else float("nan")
    elements = int(np.size(work.first_input()))
    base = next(c for c in cases if (c.impl, c.path) == work.baseline)
    base_median = float(np.median(base.samples))
    rows = []
    for case in cases:
        samples = np.asarray(case.samples)
        median = float(np.median(samples))
        moved = (
            reference_bytes.get(case.path, 0) if case.impl == "-" else bytes_step if large else 0
        )
        program = case.program
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
                bandwidth_gbs=moved / median / 1e9 if large else None,
                # XLA's planned bytes cost one more compile per path: the standard run's only.
                peak_bytes=program.peak_bytes() if program and work.planned else None,
                size=work.size,
                depth=work.depth,
                leaves=case.leaves,
                passes=roofline.analyse(program.compiled(), elements)
                if program and case.roofline
                else None,
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
