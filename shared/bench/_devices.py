"""`state-rosetta bench --devices 1,2,4,8 --processes 1,2`: the data-parallel harness step's
time against the number of devices and processes.

Each count runs in processes of its own (forced CPU host devices must be set before JAX
starts; several processes join on 127.0.0.1 with gloo). On one 2-core CPU the devices are
threads sharing two cores: the numbers show what splitting, synchronising and collecting
cost, not a speed-up.

Every model with bench shapes is timed at its spec's large shape, in its baseline
implementation (`device_shape`); the bench knows no model.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._devices import with_device_count
from .._launch import free_port, join
from .._registry import load_spec, make
from ..core import BenchShape
from ._options import BenchOptions

MODES = ("shard_map", "jit")
SEED = 0
"""Every process draws the same shape from its spec with this seed (the same global data)."""


def device_models() -> tuple[str, ...]:
    """The models the device bench times: every built-in model with bench shapes, as for
    `state-rosetta bench`."""
    return BenchOptions().model_names()


def device_shape(model: str, quick: bool) -> BenchShape:
    """The shape the device bench times `model` at: the spec's large bench shape (its last,
    where it has none), with its steps per sample, its samples and its baseline
    implementation, which is the one timed."""
    spec = load_spec(model)
    if spec.bench is None:
        raise ValueError(f"bench --devices: model {model} has no bench shapes in its spec")
    shapes = spec.bench(quick, np.random.default_rng(SEED))
    return next((s for s in shapes if s.size == "large"), shapes[-1])


@dataclass(frozen=True)
class DeviceRow:
    """One measurement: the harness step of one model, one mode, one device layout."""

    model: str
    shape: str
    mode: str
    devices: int
    processes: int
    median_us: float
    p10_us: float
    p90_us: float
    ratio_to_one_device: float = 0.0


def _worker(model: str, mode: str, devices: int, quick: bool) -> dict[str, Any]:
    """Time one step in this process (devices already visible, processes joined)."""
    import jax
    from jax.sharding import NamedSharding

    from ..core import DATA_AXIS, OptimizerConfig, Parallel, data_mesh, step_keys
    from ..core._harness import _keys_for, unstack
    from ..core._parallel import BY_STEP_BATCH, REPLICATED, parallel_step, place

    spec = load_spec(model)
    shape = device_shape(model, quick)
    config = shape.config
    if mode == "shard_map" and spec.cross_device is not None:
        config = spec.cross_device(config, DATA_AXIS)  # the model's own cross-device argument
    impl = make(shape.baseline[0], config, model)
    batches = shape.batches
    steps = len(unstack(batches))
    if spec.init is not None:
        params, state = spec.init(impl, config, batches, SEED)
    else:
        first = spec.model_inputs(unstack(batches)[0])
        params, state = impl.init(jax.random.key(SEED), first)
    keys = _keys_for(step_keys(SEED, steps) if spec.random else None, steps)
    mesh = data_mesh(devices)
    tx = OptimizerConfig("sgd", 0.01).make()
    replicated = NamedSharding(mesh, REPLICATED)
    params, state = place((params, state), replicated)
    opt_state = jax.jit(tx.init)(params)
    stacked = place(batches, NamedSharding(mesh, BY_STEP_BATCH))
    per_step = unstack(stacked)
    parallel = Parallel(devices, mode)
    step = parallel_step(impl, spec.loss, tx, spec.inputs, parallel, mesh, spec.loss_reduction)
    carry = step(params, state, opt_state, per_step[0], keys[0])[:3]  # compile
    jax.block_until_ready(carry)
    times = []
    for _ in range(shape.samples):
        start = time.perf_counter()
        for batch, key in zip(per_step, keys, strict=True):
            carry = step(*carry, batch, key)[:3]
        jax.block_until_ready(carry)
        times.append((time.perf_counter() - start) / len(per_step))
    times.sort()
    return {
        "shape": f"{shape.label} ({shape.baseline[0]})",
        "median_us": statistics.median(times) * 1e6,
        "p10_us": times[len(times) // 10] * 1e6,
        "p90_us": times[(9 * len(times)) // 10] * 1e6,
    }


def _run(model: str, mode: str, devices: int, processes: int, quick: bool) -> DeviceRow:
    per = devices // processes
    port = free_port()
    env = with_device_count(os.environ, per)
    env["JAX_PLATFORMS"] = "cpu"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shared.bench._devices",
                json.dumps([model, mode, devices, processes, i, port, quick]),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    outputs = [c.communicate(timeout=600) for c in children]
    for i, (c, (_, err)) in enumerate(zip(children, outputs, strict=True)):
        if c.returncode != 0:
            raise RuntimeError(f"bench --devices: process {i} failed: {err.strip()[-2000:]}")
    timing = json.loads(outputs[0][0].strip().splitlines()[-1])
    return DeviceRow(model, timing.pop("shape"), mode, devices, processes, **timing)


def run_device_bench(
    devices: list[int], processes: list[int], quick: bool = False
) -> list[DeviceRow]:
    """Every model with bench shapes and every mode at every device count (one process),
    then at the largest count spread over each process count."""
    rows = []
    for model in device_models():
        for mode in MODES:
            measured = [_run(model, mode, n, 1, quick) for n in devices]
            top = max(devices)
            measured += [
                _run(model, mode, top, p, quick) for p in processes if p > 1 and top % p == 0
            ]
            one = next((r.median_us for r in measured if r.devices == 1), measured[0].median_us)
            rows += [
                DeviceRow(**{**asdict(r), "ratio_to_one_device": r.median_us / one})
                for r in measured
            ]
    return rows


def main() -> None:
    model, mode, devices, processes, index, port, quick = json.loads(sys.argv[1])
    if processes > 1:
        join(f"127.0.0.1:{port}", processes, index)
    print(json.dumps(_worker(model, mode, devices, quick)))


if __name__ == "__main__":
    main()
