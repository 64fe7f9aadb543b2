"""What the first-diverging-layer analysis costs, in steps (`python -m shared.bench._layers`).

A diverging pair pays for the analysis once: both implementations' forward passes traced
layer by layer and compiled, at the first diverging step. It is measured against the work of
one lockstep step of the same pair (both implementations' jitted training steps, compiled
and run once, as the run's first step pays them), on mlp-bn: Haiku against a Linen port
whose BatchNorm epsilon is wrong. An agreeing pair runs no trace at all (the lockstep only
holds references to the values it has made anyway); `tests/layers` checks that.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from typing import Any

import jax
import optax


def measure(repeats: int = 5) -> dict[str, Any]:
    """Median seconds of one analysis and of one first lockstep step, and their ratio."""
    from .._registry import implementations, load_factory
    from ..core._harness import unstack
    from ..core._layers import first_layer
    from ..core._optim import OptimizerConfig
    from ..core._options import RunOptions
    from ..core._setup import settings_for
    from ..core._step import TrainStep
    from ..core._stream import PairStream
    from ..models import mlp_bn

    settings = settings_for(mlp_bn.SPEC, RunOptions(steps=1))
    config = mlp_bn.SPEC.configure(settings)
    batches = mlp_bn.SPEC.data(config, settings)
    batch = unstack(batches)[0]
    impls = implementations("mlp-bn")
    ref = load_factory(impls["haiku"])(config)
    port = load_factory(impls["flax_linen"])(dataclasses.replace(config, epsilon=1e-1))
    x = mlp_bn.SPEC.model_inputs(batch)
    ref_native = ref.init(jax.random.key(0), x)
    cparams, cstate = ref.to_canonical(*ref_native)
    port_native = port.from_canonical(cparams, cstate)
    tx = optax.sgd(0.02)
    step_s, layer_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for impl, (p, s) in ((ref, ref_native), (port, port_native)):
            run = jax.jit(TrainStep(impl, mlp_bn.SPEC.loss, tx, mlp_bn.SPEC.inputs).with_grads)
            jax.block_until_ready(run(p, s, tx.init(p), batch))
        step_s.append(time.perf_counter() - start)
        # The divergence the lockstep found (its leaves only order the report's fallbacks).
        stream = PairStream(("port", "ref"))
        stream.push(1, {"loss": jax.numpy.ones(())}, {"loss": jax.numpy.zeros(())})
        div = stream.result().first_divergence
        assert div is not None
        start = time.perf_counter()
        report = first_layer(
            1, ("port", "ref"), (port, ref), (port_native, ref_native), batch, None,
            mlp_bn.SPEC.inputs, mlp_bn.SPEC.tolerances_for(config, OptimizerConfig()).same, div, {},
        )  # fmt: skip
        layer_s.append(time.perf_counter() - start)
        assert report.layer == "bn", report.note
    step, layers = statistics.median(step_s), statistics.median(layer_s)
    return {
        "case": "mlp-bn, haiku against a linen port with epsilon 1e-1",
        "repeats": repeats,
        "first_step_s": step,
        "layer_analysis_s": layers,
        "steps_worth": layers / step,
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
