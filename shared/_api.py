"""`run_compare`: one comparison run of a built-in model or the user's own, by options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._registry import (
    DEFAULT_MODEL,
    implementations,
    is_registered,
    load_factory,
    load_spec,
    versions,
)
from .core import (
    LOOPS,
    CompareResult,
    ImplementationFactory,
    ModelSpec,
    Parallel,
    Progress,
    RunOptions,
    Tolerance,
    parse_tolerance,
    run_model,
)


@dataclass(frozen=True)
class CompareOptions:
    """Every option of `state-rosetta compare` (the defaults reproduce the Flax page's loop).

    **Arguments:**

    - `model`: a built-in model's name (`"bias-adder"`, `"mlp-bn"`), `FILE.py:ATTR` or
      `MODULE:ATTR` naming a [`ModelSpec`][], or a spec.
    - `impls`: the built-in model's registered implementations to run (default: all).
    - `user_impls`: more implementations, as `MODULE:ATTR` or `FILE.py:ATTR`.
    - `loops`: which loops: `"harness"`, `"native"`, `"scan"`.
    - `steps`, `batch`: `None` for the model's defaults.
    - `optimizer`, `lr`: the optax optimizer and its learning rate (`None`: the model's).
    - `seed`: seeds the data, the init and the per-step keys.
    - `mode`: one of the model's modes (`None`: its first).
    - `data`, `data_source`: the user's own data (`--data`) and the file it came from.
    - `values`: the model's own options by key (e.g. `{"momentum": 0.5}`).
    - `reference`: the implementation or trajectory every other one is compared with.
    - `tolerance`: a tolerance, or its text (`"4ulp"`, `"1e-6"`), for every float32 pair.
    - `devices`, `parallel`: train data-parallel over this many devices, in this mode
      (`"shard_map"`, `"jit"`, `"unsynced"`), against the single-device run.
    """

    model: str | ModelSpec = DEFAULT_MODEL
    impls: tuple[str, ...] | None = None
    user_impls: tuple[str, ...] = ()
    loops: tuple[str, ...] = LOOPS
    steps: int | None = None
    batch: int | None = None
    optimizer: str = "sgd"
    lr: float | None = None
    seed: int = 0
    mode: str | None = None
    data: np.ndarray | None = field(default=None, compare=False)
    data_source: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    tolerance: Tolerance | str | None = None
    devices: int = 1
    parallel: str = "shard_map"


def run_compare(
    options: CompareOptions,
    extra: Sequence[ImplementationFactory] = (),
    progress: Progress | None = None,
) -> CompareResult:
    """Train every selected implementation of the model in every selected loop and compare.

    `extra` adds implementations by factory (`config -> implementation`), as `--impl` does.
    Bad options, specs and implementations raise `ValueError` or `TypeError` before
    anything is trained; a trajectory whose training raises is recorded in `errors`.
    """
    spec = load_spec(options.model)
    registry = implementations(spec.name) if is_registered(options.model) else {}
    names = tuple(registry) if options.impls is None else options.impls
    unknown = [name for name in names if name not in registry]
    if unknown:
        expected = ", ".join(registry) or "none: this model is not built in; use --impl"
        raise ValueError(f"unknown implementation {unknown[0]!r}; expected one of {expected}")
    factories: list[tuple[str, ImplementationFactory]] = [
        (name, load_factory(registry[name])) for name in names
    ]
    factories += [(text, load_factory(text)) for text in options.user_impls]
    factories += [(getattr(f, "__name__", repr(f)), f) for f in extra]
    reference_factory = (
        load_factory(registry[spec.reference]) if spec.reference in registry else None
    )
    tolerance = options.tolerance
    if isinstance(tolerance, str):
        tolerance = parse_tolerance(tolerance)
    result = run_model(
        spec,
        factories,
        RunOptions(
            loops=options.loops,
            steps=options.steps,
            batch=options.batch,
            optimizer=options.optimizer,
            lr=options.lr,
            seed=options.seed,
            mode=options.mode,
            data=options.data,
            data_source=options.data_source,
            values=options.values,
            reference=options.reference,
            tolerance=tolerance,
            parallel=None if options.devices == 1 else Parallel(options.devices, options.parallel),
        ),
        reference_factory=reference_factory,
        versions=versions(),
        progress=progress,
    )
    result.config.update(impls=list(names), user_impls=list(options.user_impls))
    return result
