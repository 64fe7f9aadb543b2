"""`state-rosetta bench --devices 1,2,4,8 --processes 1,2`: the data-parallel harness step's
time against the number of devices and processes.

Each count runs in processes of its own (forced CPU host devices must be set before JAX
starts; several processes join on 127.0.0.1 with gloo). On one 2-core CPU the devices are
threads sharing two cores: the numbers show what splitting, synchronising and collecting
cost, not a speed-up.
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

from .._devices import with_device_count
from .._launch import free_port, join

MODES = ("shard_map", "jit")
SHAPES = {"bias-adder": "B1024xD256 (jax)", "mlp-bn": "B512xH64 (flax_linen)"}


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


def _worker(model: str, mode: str, devices: int, steps: int, samples: int) -> dict[str, Any]:
    """Time one step in this process (devices already visible, processes joined)."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding

    from .._registry import load_spec, make
    from ..core import OptimizerConfig, Parallel, data_mesh
    from ..core._harness import unstack
    from ..core._parallel import BY_STEP_BATCH, REPLICATED, parallel_step, place

    spec = load_spec(model)
    rng = np.random.default_rng(0)
    parallel = Parallel(devices, mode)
    config: Any
    if model == "bias-adder":
        from ..models.bias_adder import BiasAdderConfig

        config = BiasAdderConfig(256, axis_name="data" if mode == "shard_map" else None)
        batches: Any = rng.standard_normal((steps, 1024, 256)).astype(np.float32)
        impl = make("jax", config, model)
        params, state = impl.init(jax.random.key(0), batches[0])
    else:
        from ..models.mlp_bn import Labelled, MlpBnConfig

        config = MlpBnConfig(hidden=64, axis_name="data" if mode == "shard_map" else None)
        x = rng.random((steps, 512, 64)).astype(np.float32)
        labels = rng.integers(0, 10, (steps, 512)).astype(np.int32)
        batches = Labelled(x, labels)
        impl = make("flax_linen", config, model)
        assert spec.init is not None
        params, state = spec.init(impl, config, batches, 0)
    mesh = data_mesh(devices)
    tx = OptimizerConfig("sgd", 0.01).make()
    replicated = NamedSharding(mesh, REPLICATED)
    params, state = place((params, state), replicated)
    opt_state = jax.jit(tx.init)(params)
    stacked = place(batches, NamedSharding(mesh, BY_STEP_BATCH))
    per_step = unstack(stacked)
    step = parallel_step(impl, spec.loss, tx, spec.inputs, parallel, mesh, spec.loss_reduction)
    carry = step(params, state, opt_state, per_step[0], None)[:3]  # compile
    jax.block_until_ready(carry)  # type: ignore[no-untyped-call]
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for batch in per_step:
            carry = step(*carry, batch, None)[:3]
        jax.block_until_ready(carry)  # type: ignore[no-untyped-call]
        times.append((time.perf_counter() - start) / len(per_step))
    times.sort()
    return {
        "median_us": statistics.median(times) * 1e6,
        "p10_us": times[len(times) // 10] * 1e6,
        "p90_us": times[(9 * len(times)) // 10] * 1e6,
    }


def _run(
    model: str, mode: str, devices: int, processes: int, steps: int, samples: int
) -> DeviceRow:
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
                json.dumps([model, mode, devices, processes, i, port, steps, samples]),
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
    return DeviceRow(model, SHAPES[model], mode, devices, processes, **timing)


def run_device_bench(
    devices: list[int], processes: list[int], quick: bool = False
) -> list[DeviceRow]:
    """Every model and mode at every device count (one process), then at the largest count
    spread over each process count."""
    steps, samples = (5, 3) if quick else (10, 11)
    rows = []
    for model in SHAPES:
        for mode in MODES:
            measured = [_run(model, mode, n, 1, steps, samples) for n in devices]
            top = max(devices)
            measured += [
                _run(model, mode, top, p, steps, samples)
                for p in processes
                if p > 1 and top % p == 0
            ]
            one = next((r.median_us for r in measured if r.devices == 1), measured[0].median_us)
            rows += [
                DeviceRow(**{**asdict(r), "ratio_to_one_device": r.median_us / one})
                for r in measured
            ]
    return rows


def main() -> None:
    model, mode, devices, processes, index, port, steps, samples = json.loads(sys.argv[1])
    if processes > 1:
        join(f"127.0.0.1:{port}", processes, index)
    print(json.dumps(_worker(model, mode, devices, steps, samples)))


if __name__ == "__main__":
    main()
