"""The verdict's cost: a whole cross-validation side by side with the plain training of the
same implementations, as the model grows and as the steps grow (`bench --verdict`).

Each measurement runs in a fresh process, so that its peak resident memory is its own:
`plain` trains every implementation with the harness's jitted step and nothing else (no
recording, no comparison); `verdict` is `run_compare` with the same model, implementations,
loops and steps. Both are timed from the same point (after the imports: data, init, compile
and training included). Run as a module, this file is that worker.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SIZES = (1_000, 10_000, 100_000, 1_000_000)
"""Bias-adder features of the size sweep (values: twice that, a bias and a mean)."""
STEP_COUNTS = (10, 100, 1000)
"""Steps of the step sweep (at the size sweep's largest model)."""
DEPTHS = (1, 4, 16)
"""Bias-stack depths of the depth sweep (width `DEPTH_WIDTH`): the leaves grow with depth
(three a layer), the values stay few; a wide deep stack's values blow up in float32 (its
D x D layers multiply), so that no two runs of it can agree."""
DEPTH_WIDTH = 4
IMPLS = ("jax", "flax_nnx")


@dataclass(frozen=True)
class Case:
    """One measurement: a model, its implementations, loops, steps and own options."""

    sweep: str
    label: str
    model: str
    steps: int
    values: dict[str, Any] = field(default_factory=dict)
    impls: tuple[str, ...] = IMPLS
    loops: tuple[str, ...] = ("harness",)
    lr: float | None = None
    """The learning rate (`None`: the model's); sgd on the bias adder is stable while
    lr x 2 x batch < 2, so a batch of 256 needs less than the default 0.02."""
    lockstep: str = "on"
    """`"on"` (the default run), `"off"` (`--no-lockstep`) or `"every"` (a lockstep step at
    every step, even where the free-running one starts from the reference's values)."""
    size: int = 0
    """The sweep's variable: values, steps or depth."""


@dataclass(frozen=True)
class Measured:
    """A case's plain training and its cross-validation: seconds and peak RSS bytes."""

    case: Case
    plain_s: float
    verdict_s: float
    plain_rss: int
    verdict_rss: int

    @property
    def time_ratio(self) -> float:
        return self.verdict_s / self.plain_s

    @property
    def memory_ratio(self) -> float:
        return self.verdict_rss / self.plain_rss


def cases(
    sizes: Sequence[int] = SIZES,
    step_counts: Sequence[int] = STEP_COUNTS,
    depths: Sequence[int] = DEPTHS,
    *,
    size_steps: int = 100,
) -> list[Case]:
    """The sweeps: values at `size_steps` steps, steps at the largest of `sizes`, depth,
    and the lockstep's cost at the tiny and the large shape."""
    step_features = max(sizes)
    out = [
        Case("values", f"D={n}", "bias-adder", size_steps, {"features": n}, size=2 * n)
        for n in sizes
    ]
    out += [
        Case("steps", f"{s} steps", "bias-adder", s, {"features": step_features}, size=s)
        for s in step_counts
    ]
    values = DEPTH_WIDTH * DEPTH_WIDTH + 2 * DEPTH_WIDTH  # a layer's kernel, bias and mean
    out += [
        Case(
            "depth",
            f"L={d}",
            "bias-stack",
            50,
            {"depth": d, "features": DEPTH_WIDTH},
            size=d * values,
        )
        for d in depths
    ]
    shapes = (("tiny B8xD4", 8, 4, None), ("large B256xD1024", 256, 1024, 0.001))
    for shape, batch, features, lr in shapes:
        for mode in ("off", "every"):
            out.append(
                Case(
                    "lockstep",
                    f"{shape}, lockstep {mode}",
                    "bias-adder",
                    200,
                    {"features": features, "batch": batch},
                    lr=lr,
                    lockstep=mode,
                    size=features,
                )
            )
    return out


def _argv(case: Case, mode: str) -> list[str]:
    return [sys.executable, "-m", "shared.bench._verdict", mode, json.dumps(asdict(case))]


def measure(case: Case, progress: Callable[[str], None] | None = None) -> Measured:
    """Run the case's plain training and its cross-validation, each in a fresh process."""
    out = {}
    for mode in ("plain", "verdict"):
        if progress:
            progress(f"{case.sweep}: {case.label} ({mode})")
        done = subprocess.run(
            _argv(case, mode), capture_output=True, text=True, timeout=3600, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench --verdict {case.label} ({mode}): {done.stderr[-2000:]}")
        out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(
        case,
        out["plain"]["seconds"],
        out["verdict"]["seconds"],
        out["plain"]["peak_rss"],
        out["verdict"]["peak_rss"],
    )


@dataclass(frozen=True)
class Growth:
    """How a sweep's cost grows: the log-log slope of time and of peak memory against the
    sweep's variable (1: linear, 0: flat), plain and verdict."""

    sweep: str
    plain_time: float
    verdict_time: float
    plain_memory: float
    verdict_memory: float


def fit(measured: Sequence[Measured]) -> list[Growth]:
    """The growth of each sweep with at least two sizes (lockstep cases are not a sweep)."""
    out = []
    for sweep in dict.fromkeys(m.case.sweep for m in measured):
        rows = [m for m in measured if m.case.sweep == sweep]
        if sweep == "lockstep" or len({m.case.size for m in rows}) < 2:
            continue
        x = np.log([m.case.size for m in rows])

        def slope(values: list[float], x: np.ndarray = x) -> float:
            return float(np.polyfit(x, np.log(values), 1)[0])

        out.append(
            Growth(
                sweep,
                slope([m.plain_s for m in rows]),
                slope([m.verdict_s for m in rows]),
                slope([float(m.plain_rss) for m in rows]),
                slope([float(m.verdict_rss) for m in rows]),
            )
        )
    return out


def _plain(case: Case) -> None:
    """Train every implementation with the jitted harness step, and nothing else."""
    import jax

    from .. import load_spec, make
    from ..core import RunOptions, TrainStep, setup_run, unstack

    spec = load_spec(case.model)
    options = RunOptions(
        steps=case.steps, values=_model_values(case), batch=_batch(case), lr=case.lr
    )
    run = setup_run(spec, options)
    per_step = unstack(run.batches)
    keys = list(run.keys) if run.keys is not None else [None] * len(per_step)
    for name in case.impls:
        impl = make(name, run.config, case.model)
        params, state = run.initial(impl, run.config)
        tx = run.optimizer.make()
        step = jax.jit(TrainStep(impl, spec.loss, tx, spec.inputs))
        opt_state = tx.init(params)
        loss = None
        for batch, key in zip(per_step, keys, strict=True):
            params, state, opt_state, loss = step(params, state, opt_state, batch, key)
        jax.block_until_ready(loss)


def _verdict(case: Case) -> None:
    from .. import CompareOptions, run_compare

    result = run_compare(
        CompareOptions(
            model=case.model,
            impls=case.impls,
            loops=case.loops,
            steps=case.steps,
            batch=_batch(case),
            lr=case.lr,
            values=_model_values(case),
            lockstep=case.lockstep != "off",
            lockstep_every_step=case.lockstep == "every",
        )
    )
    if not result.agree:
        raise RuntimeError(f"bench --verdict {case.label}: the implementations do not agree")


def _model_values(case: Case) -> dict[str, Any]:
    return {k: v for k, v in case.values.items() if k != "batch"}


def _batch(case: Case) -> int | None:
    batch = case.values.get("batch")
    return None if batch is None else int(batch)


def _worker(mode: str, text: str) -> None:
    data = json.loads(text)
    case = Case(**{**data, "impls": tuple(data["impls"]), "loops": tuple(data["loops"])})
    start = time.perf_counter()
    (_plain if mode == "plain" else _verdict)(case)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_rss": peak, "pid": os.getpid()}))


def slope_text(value: float) -> str:
    """A fitted exponent, as a reader takes it: `x^1.02`."""
    return "-" if not math.isfinite(value) else f"x^{value:.2f}"


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
