"""One `compare` run: build the implementations, train them in every loop, compare."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import numpy as np

from ._compare import PairResult, compare
from ._data import as_batches, seed_batch
from ._harness import LOOPS, run_loop
from ._optim import OptimizerConfig
from ._oracle import bias_adder_oracle
from ._protocol import BiasAdderConfig, Implementation, ImplementationFactory
from ._reference import bias_adder_loss
from ._registry import IMPLEMENTATIONS, REFERENCE, build, make, versions
from ._tolerances import ORACLE_KEY, tolerance_for
from ._trajectory import Trajectory

DEFAULT_STEPS = 10  # the seed's loop: `for _ in range(10)`


@dataclass(frozen=True)
class CompareOptions:
    """Every option of `state-rosetta compare` (the defaults reproduce the seed).

    **Arguments:**

    - `impls`: registered implementations to run.
    - `loops`: which loops: `"harness"` (jitted generic step), `"native"` (the framework's
      own idiom), `"scan"` (all steps in one `lax.scan`).
    - `steps`: number of steps; default 10, or the data's length for (steps, batch, D) data.
    - `batch`, `features`: the shape of the generated batch (ignored when `data` is given).
    - `momentum`: the model's EMA momentum.
    - `optimizer`, `lr`: the optax optimizer and its learning rate.
    - `seed`: seeds the generated data and the init key.
    - `seed_faithful`: keep the seed's `keepdims=True` (state turns into (1, D)).
    - `data`: the user's own data, (batch, D) reused every step or (steps, batch, D).
    - `user_impls`: extra implementations as `MODULE:ATTR` or `FILE.py:ATTR`.
    """

    impls: tuple[str, ...] = tuple(IMPLEMENTATIONS)
    loops: tuple[str, ...] = LOOPS
    steps: int | None = None
    batch: int = 8
    features: int = 4
    momentum: float = 0.9
    optimizer: str = "sgd"
    lr: float = 0.02
    seed: int = 0
    seed_faithful: bool = False
    data: np.ndarray | None = field(default=None, compare=False)
    data_source: str | None = None
    user_impls: tuple[str, ...] = ()


@dataclass
class CompareResult:
    """Everything a `compare` run produced; `to_json` gives the documented contract."""

    config: dict[str, Any]
    trajectories: dict[str, Trajectory]
    errors: dict[str, str]
    reference: str
    pairs: list[PairResult]
    versions: dict[str, str]

    @property
    def agree(self) -> bool:
        return not self.errors and all(p.agree for p in self.pairs)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": "bias-adder",
            "config": self.config,
            "versions": self.versions,
            "trajectories": {k: t.to_json() for k, t in self.trajectories.items()},
            "errors": self.errors,
            "comparison": {
                "reference": self.reference,
                "agree": self.agree,
                "pairs": [p.to_json() for p in self.pairs],
            },
        }


Progress = Callable[[str], None]


def prepare(
    options: CompareOptions, extra: Sequence[ImplementationFactory] = ()
) -> tuple[BiasAdderConfig, OptimizerConfig, np.ndarray, list[Implementation]]:
    """Validate every option and build what a run needs, before anything is trained."""
    unknown = [name for name in options.impls if name not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(
            f"unknown implementation {unknown[0]!r}; expected one of {', '.join(IMPLEMENTATIONS)}"
        )
    bad_loops = [loop for loop in options.loops if loop not in LOOPS]
    if bad_loops:
        raise ValueError(f"unknown loop {bad_loops[0]!r}; expected one of {', '.join(LOOPS)}")
    optimizer = OptimizerConfig(options.optimizer, learning_rate=options.lr)
    if options.data is not None:
        data = np.asarray(options.data)
        features = data.shape[-1] if data.ndim in (2, 3) else options.features
        config = BiasAdderConfig(features, options.momentum, options.seed_faithful)
        steps = options.steps if options.steps is not None or data.ndim == 3 else DEFAULT_STEPS
    else:
        config = BiasAdderConfig(options.features, options.momentum, options.seed_faithful)
        data = seed_batch(options.batch, options.features, options.seed)
        steps = DEFAULT_STEPS if options.steps is None else options.steps
    batches = as_batches("data", data, config, steps)
    impls = [make(name, config) for name in (*options.impls, *options.user_impls)]
    impls += [build(factory, config, repr(factory)) for factory in extra]
    if not impls:
        raise ValueError("no implementation selected; expected at least one")
    seen: set[str] = set()
    for impl in impls:
        if impl.name in seen:
            raise ValueError(f"two implementations are named {impl.name!r}; names must be unique")
        seen.add(impl.name)
    return config, optimizer, batches, impls


def run_compare(
    options: CompareOptions,
    extra: Sequence[ImplementationFactory] = (),
    progress: Progress | None = None,
) -> CompareResult:
    """Train every selected implementation in every selected loop and compare them.

    `extra` adds implementations by factory (`config -> implementation`), as `--impl` does.

    Bad options raise `ValueError` or `TypeError` before anything runs. A trajectory whose
    training raises (the seed-faithful model does, in some frameworks) is recorded in
    `errors` with the exception's type and message, and the run does not agree.
    """
    config, optimizer, batches, impls = prepare(options, extra)
    trajectories: dict[str, Trajectory] = {}
    errors: dict[str, str] = {}
    key = jax.random.key(options.seed)
    for impl in impls:
        for loop in options.loops:
            name = f"{impl.name}/{loop}"
            if loop == "native" and not hasattr(impl, "native_loop"):
                continue  # a user's implementation may have no native loop
            if progress:
                progress(name)
            try:
                params, state = impl.init(key, batches[0])
                trajectories[name] = run_loop(
                    loop, impl, params, state, optimizer.make(), batches, bias_adder_loss
                )
            except Exception as e:  # reported, not raised: a failing framework is a finding
                errors[name] = _describe(e)
    trajectories[ORACLE_KEY] = bias_adder_oracle(batches, config, optimizer)

    preferred = f"{REFERENCE}/harness"
    reference = preferred if preferred in trajectories else next(iter(trajectories))
    pairs = [
        compare(t, trajectories[reference], tolerance_for(k, reference), names=(k, reference))
        for k, t in trajectories.items()
        if k != reference
    ]
    resolved = {
        **{k: v for k, v in asdict(options).items() if k not in ("data", "data_source")},
        "impls": list(options.impls),
        "loops": list(options.loops),
        "user_impls": list(options.user_impls),
        "steps": int(batches.shape[0]),
        "batch": int(batches.shape[1]),
        "features": config.features,
        "data": options.data_source,
        "data_dtype": None if options.data is None else str(np.asarray(options.data).dtype),
        "optimizer_hyperparameters": asdict(optimizer),
    }
    return CompareResult(resolved, trajectories, errors, reference, pairs, versions())


def _describe(e: BaseException) -> str:
    first_line = next(iter(str(e).splitlines()), "")
    return f"{type(e).__name__}: {first_line}" if first_line else type(e).__name__


def failing(result: CompareResult) -> Sequence[str]:
    """Names of the trajectories that failed or diverged."""
    return [*result.errors, *(p.a for p in result.pairs if not p.agree)]
