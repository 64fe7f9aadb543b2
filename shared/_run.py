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

    - `model`: `"bias-adder"` (the seed's model) or `"mlp-bn"` (an MLP with each
      framework's BatchNorm, trained on scikit-learn's digits).
    - `mode`: for mlp-bn, `"aligned"` (BatchNorm settings made equal) or `"defaults"` (each
      framework's own BatchNorm defaults, and how far each drifts).
    - `hidden`: for mlp-bn, the hidden width H.
    - `impls`: registered implementations to run (default: all of the model's).
    - `loops`: which loops: `"harness"` (jitted generic step), `"native"` (the framework's
      own idiom), `"scan"` (all steps in one `lax.scan`).
    - `steps`: number of steps; default 10, or the data's length for (steps, batch, D) data
      (mlp-bn: 200).
    - `batch`, `features`: the shape of the generated batch (ignored when `data` is given);
      defaults 8 and 4 (mlp-bn: batch 64; features must be 64).
    - `momentum`: the model's EMA momentum (mlp-bn: BatchNorm's, in aligned mode).
    - `optimizer`, `lr`: the optax optimizer and its learning rate (default 0.02; mlp-bn 0.1).
    - `seed`: seeds the generated data and the init key.
    - `seed_faithful`: keep the seed's `keepdims=True` (state turns into (1, D)).
    - `data`: the user's own data, (batch, D) reused every step or (steps, batch, D).
    - `user_impls`: extra implementations as `MODULE:ATTR` or `FILE.py:ATTR`.
    """

    impls: tuple[str, ...] | None = None
    loops: tuple[str, ...] = LOOPS
    steps: int | None = None
    batch: int | None = None
    features: int | None = None
    momentum: float = 0.9
    optimizer: str = "sgd"
    lr: float | None = None
    seed: int = 0
    seed_faithful: bool = False
    data: np.ndarray | None = field(default=None, compare=False)
    data_source: str | None = None
    user_impls: tuple[str, ...] = ()
    model: str = "bias-adder"
    mode: str = "aligned"
    hidden: int = 32


@dataclass
class CompareResult:
    """Everything a `compare` run produced; `to_json` gives the documented contract."""

    config: dict[str, Any]
    trajectories: dict[str, Trajectory]
    errors: dict[str, str]
    reference: str
    pairs: list[PairResult]
    versions: dict[str, str]
    model: str = "bias-adder"
    evals: dict[str, dict[str, float]] = field(default_factory=dict)
    """mlp-bn: per trajectory, {"loss", "accuracy"} on the test split after the last step."""
    eval_diffs: dict[str, float] = field(default_factory=dict)
    """mlp-bn: per trajectory, max |difference| of its test logits from the reference's."""
    eval_atol: float | None = None
    drift: list[dict[str, Any]] = field(default_factory=list)
    """mlp-bn `--defaults`: each framework's drift, with all its defaults and one at a time."""

    @property
    def agree(self) -> bool:
        evals_agree = self.eval_atol is None or all(
            d <= self.eval_atol for d in self.eval_diffs.values()
        )
        return not self.errors and all(p.agree for p in self.pairs) and evals_agree

    def to_json(self) -> dict[str, Any]:
        trajectories = {k: t.to_json() for k, t in self.trajectories.items()}
        for k, ev in self.evals.items():
            trajectories[k]["eval"] = ev
        comparison: dict[str, Any] = {
            "reference": self.reference,
            "agree": self.agree,
            "pairs": [p.to_json() for p in self.pairs],
        }
        if self.eval_atol is not None:
            comparison["eval"] = {"atol": self.eval_atol, "max_abs": self.eval_diffs}
        if self.drift:
            comparison["drift"] = self.drift
        return {
            "model": self.model,
            "config": self.config,
            "versions": self.versions,
            "trajectories": trajectories,
            "errors": self.errors,
            "comparison": comparison,
        }


Progress = Callable[[str], None]


def prepare(
    options: CompareOptions, extra: Sequence[ImplementationFactory] = ()
) -> tuple[BiasAdderConfig, OptimizerConfig, np.ndarray, list[Implementation]]:
    """Validate every option and build what a run needs, before anything is trained."""
    names = tuple(IMPLEMENTATIONS) if options.impls is None else options.impls
    unknown = [name for name in names if name not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(
            f"unknown implementation {unknown[0]!r}; expected one of {', '.join(IMPLEMENTATIONS)}"
        )
    bad_loops = [loop for loop in options.loops if loop not in LOOPS]
    if bad_loops:
        raise ValueError(f"unknown loop {bad_loops[0]!r}; expected one of {', '.join(LOOPS)}")
    optimizer = OptimizerConfig(options.optimizer, learning_rate=_bias_adder_lr(options))
    batch = 8 if options.batch is None else options.batch
    features = 4 if options.features is None else options.features
    if options.data is not None:
        data = np.asarray(options.data)
        features = data.shape[-1] if data.ndim in (2, 3) else features
        config = BiasAdderConfig(features, options.momentum, options.seed_faithful)
        steps = options.steps if options.steps is not None or data.ndim == 3 else DEFAULT_STEPS
    else:
        config = BiasAdderConfig(features, options.momentum, options.seed_faithful)
        data = seed_batch(batch, features, options.seed)
        steps = DEFAULT_STEPS if options.steps is None else options.steps
    batches = as_batches("data", data, config, steps)
    impls = [make(name, config) for name in (*names, *options.user_impls)]
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
    `options.model` picks the model; mlp-bn runs are `run_mlp_compare`'s.
    """
    if options.model == "mlp-bn":
        from ._mlp_run import run_mlp_compare

        return run_mlp_compare(options, extra, progress)
    if options.model != "bias-adder":
        raise ValueError(f"unknown model {options.model!r}; expected one of bias-adder, mlp-bn")
    if options.mode != "aligned":
        raise ValueError("--defaults applies to --model mlp-bn; the bias adder has no defaults")
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
        **{k: v for k, v in asdict(options).items() if k not in _NOT_BIAS_ADDER},
        "impls": list(tuple(IMPLEMENTATIONS) if options.impls is None else options.impls),
        "loops": list(options.loops),
        "user_impls": list(options.user_impls),
        "steps": int(batches.shape[0]),
        "batch": int(batches.shape[1]),
        "features": config.features,
        "lr": optimizer.learning_rate,
        "data": options.data_source,
        "data_dtype": None if options.data is None else str(np.asarray(options.data).dtype),
        "optimizer_hyperparameters": asdict(optimizer),
    }
    return CompareResult(resolved, trajectories, errors, reference, pairs, versions())


_NOT_BIAS_ADDER = ("data", "data_source", "model", "mode", "hidden")


def _bias_adder_lr(options: CompareOptions) -> float:
    return 0.02 if options.lr is None else options.lr  # the seed's learning rate


def _describe(e: BaseException) -> str:
    first_line = next(iter(str(e).splitlines()), "")
    return f"{type(e).__name__}: {first_line}" if first_line else type(e).__name__


def failing(result: CompareResult) -> Sequence[str]:
    """Names of the trajectories that failed or diverged."""
    return [*result.errors, *(p.a for p in result.pairs if not p.agree)]
