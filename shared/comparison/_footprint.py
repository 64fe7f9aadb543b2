"""The memory guard of `state-rosetta compare`: measure what one step of the run takes, then
refuse (exit 2) a run whose estimate does not fit the machine, unless `--force`.

It runs before anything large is made: one step's data at a batch of one (NumPy, before
JAX starts, so that the devices can be checked before they exist), then one
implementation's init on it for the canonical shapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._command import UsageError
from .._registry import implementations, is_registered, load_factory
from ..core import (
    KEEP_VALUES,
    Footprint,
    ModelSpec,
    RunOptions,
    Settings,
    build,
    contained,
    estimate_footprint,
    machine_memory,
    settings_for,
    unstack,
)

GIB = 2**30


@dataclass(frozen=True)
class Probe:
    """One step of the run, measured: the model's settings and config, the step's batch in
    bytes, the global batch size, and the step's data at a batch of one (for the init)."""

    settings: Settings
    config: Any
    steps: int
    batch: int
    data_bytes_per_step: int
    one_step: Any
    reused: bool = False
    """The model reuses one batch at every step (its data are a broadcast view)."""


def _nbytes(tree: Any) -> int:
    import jax

    return sum(int(np.asarray(leaf).nbytes) for leaf in jax.tree.leaves(tree))


def _batch_of(tree: Any) -> int:
    import jax

    return int(np.shape(jax.tree.leaves(tree)[0])[1])


def _reused(tree: Any) -> bool:
    """Are the data one batch reused at every step (stride 0 on the steps axis)?"""
    import jax

    leaves = jax.tree.leaves(tree)
    return bool(leaves) and all(
        isinstance(leaf, np.ndarray) and leaf.strides[0] == 0 for leaf in leaves
    )


def probe(spec: ModelSpec, options: RunOptions) -> Probe | None:
    """Measure one step of the run, or `None` where the model cannot make one alone (the run
    then reports the model's own error)."""
    try:
        settings = settings_for(spec, options)
        config = spec.configure(settings)
        steps = settings.steps or spec.steps
        one = replace(settings, steps=1)
        if settings.data is not None and spec.user_data is not None:
            data = spec.user_data(config, np.asarray(settings.data), one)
            return Probe(settings, config, steps, _batch_of(data), _nbytes(data), data)
        small = replace(one, batch=1)
        data = spec.data(config, small)
        batch = settings.batch or spec.batch or _batch_of(spec.data(config, one))
        per_example = _nbytes(data) / _batch_of(data)  # the model may ignore batch=1
        reused = _reused(spec.data(config, replace(small, steps=2)))
        return Probe(settings, config, steps, batch, int(per_example * batch), data, reused)
    except Exception:  # the run itself says what is wrong with these settings
        return None


def check_devices(found: Probe | None, devices: int) -> None:
    """Refuse, before any device exists, a batch that does not split over `devices`."""
    if found is None or devices <= 1 or found.batch % devices == 0:
        return
    raise UsageError(
        f"--devices {devices}: the global batch of {found.batch} examples does not divide "
        f"across {devices} devices; expected a multiple of {devices}"
    )


def _canonical_size(spec: ModelSpec, found: Probe, factory_text: str, seed: int) -> tuple[int, int]:
    """(values, leaves) of one implementation's canonical params and state."""
    import jax

    impl = build(factory_text, load_factory(factory_text), found.config, spec)
    with contained(f"implementation {factory_text}: its init"):
        if spec.init is not None:
            params, state = spec.init(impl, found.config, found.one_step, seed)
        else:
            first = spec.model_inputs(unstack(found.one_step)[0])
            params, state = impl.init(jax.random.key(seed), first)
        cparams, cstate = impl.to_canonical(params, state)
    arrays = [*dict(cparams).values(), *dict(cstate).values()]
    return sum(int(np.size(a)) for a in arrays), len(arrays)


def footprint(
    spec: ModelSpec,
    found: Probe,
    *,
    model: str,
    impls: tuple[str, ...] | None,
    user_impls: tuple[str, ...],
    loops: tuple[str, ...],
    devices: int,
    seed: int,
) -> Footprint | None:
    """The run's estimate (`None` when no implementation can be built to measure it)."""
    registry = implementations(spec.name) if is_registered(model) else {}
    names = tuple(registry) if impls is None else impls
    candidates = [registry[n] for n in names if n in registry] + list(user_impls)
    if spec.reference in registry and spec.reference in names:
        candidates.insert(0, registry[spec.reference])
    if not candidates:
        return None
    try:
        values, leaves = _canonical_size(spec, found, candidates[0], seed)
    except Exception:  # the run reports a bad implementation itself
        return None
    return estimate_footprint(
        steps=found.steps,
        trajectories=(len(names) + len(user_impls)) * len(loops) + 1,
        data_bytes_per_step=found.data_bytes_per_step,
        values_per_step=values,
        leaves=leaves,
        devices=devices,
        data_reused=found.reused,
        keep_values=KEEP_VALUES,
    )


MEMORY_ENV = "STATE_ROSETTA_MEMORY_GIB"
"""Set to the GiB a run may take, where it is less than the machine's (a shared machine)."""


def memory_limit() -> int:
    """The bytes a run may take: the machine's memory, or `STATE_ROSETTA_MEMORY_GIB`."""
    text = os.environ.get(MEMORY_ENV)
    if text is None:
        return machine_memory()
    try:
        limit = float(text)
    except ValueError:
        raise UsageError(f"{MEMORY_ENV}={text!r}: expected a number of GiB") from None
    if not limit > 0:
        raise UsageError(f"{MEMORY_ENV}={text!r}: expected a number of GiB > 0")
    return int(limit * GIB)


def check_fits(estimate: Footprint | None, processes: int = 1) -> None:
    """Refuse (exit 2) a run whose estimate, over all its processes, exceeds the memory it
    may take (`memory_limit`)."""
    if estimate is None:
        return
    need, have = estimate.total * processes, memory_limit()
    if need <= have:
        return
    per = f" per process, {processes} processes" if processes > 1 else ""
    where = MEMORY_ENV if MEMORY_ENV in os.environ else "this machine's"
    raise UsageError(
        f"this run would need {estimate.describe()}{per}, more than the "
        f"{have / GIB:.3g} GiB of memory it may take ({where}); lower --steps or the "
        "model's sizes, or pass --force to run it anyway"
    )
