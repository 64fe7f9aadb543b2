"""One `compare --model mlp-bn` run: the MLP with BatchNorm on digits, in every framework.

`--aligned` (the default) sets every framework's BatchNorm to the same settings and loads the
same canonical init, and the trajectories, running statistics and eval outputs must agree
within `MLP_BN_LOSS`, `MLP_BN_PARAMS` and `MLP_BN_EVAL_ATOL`. `--defaults` lets each framework
keep its own BatchNorm defaults and measures how far each drifts from the aligned reference,
then reruns each framework with one default at a time to name the default responsible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from ._compare import Tolerance, compare
from ._digits import Digits, load_digits_split, minibatches
from ._harness import LOOPS, run_loop
from ._mlp_bn import (
    KNOBS,
    Labelled,
    MlpBnConfig,
    canonical_init,
    check_labels,
    mlp_bn_inputs,
    mlp_bn_loss,
)
from ._optim import OptimizerConfig
from ._protocol import Implementation, ImplementationFactory
from ._registry import MLP_BN_IMPLEMENTATIONS, MLP_BN_REFERENCE, build, make, versions
from ._tolerances import (
    MLP_BN_ADAM_LOSS,
    MLP_BN_ADAM_PARAMS,
    MLP_BN_EVAL_ATOL,
    MLP_BN_LOSS,
    MLP_BN_PARAMS,
)
from ._trajectory import Trajectory

if TYPE_CHECKING:
    from ._run import CompareOptions, CompareResult

MODEL = "mlp-bn"
MODES = ("aligned", "defaults")
STEPS = 200
BATCH = 64
LEARNING_RATE = 0.1
ADAPTIVE = ("adam", "adamw")  # optimizers for which the Dense bias before BatchNorm is dropped


@dataclass(frozen=True)
class Drift:
    """How far one framework, keeping some of its BatchNorm defaults, drifts from the reference.

    **Fields:**

    - `impl`: the framework.
    - `knob`: the default kept (from `KNOBS`), or `"all"` for the `--defaults` run itself.
    - `default`: what that default is, in the framework's words.
    - `loss_max_abs`, `state_max_abs`: largest |difference| from the aligned reference over
      every step's training loss and running statistics.
    - `eval_max_abs`: largest |difference| of the final eval logits on the test split.
    - `eval_accuracy`: the framework's test accuracy in this run.
    """

    impl: str
    knob: str
    default: str
    loss_max_abs: float
    state_max_abs: float
    eval_max_abs: float
    eval_accuracy: float

    def responsible(self) -> bool:
        """Does this default move anything beyond the aligned tolerances?"""
        return (
            self.loss_max_abs > MLP_BN_PARAMS.atol
            or self.state_max_abs > MLP_BN_PARAMS.atol
            or self.eval_max_abs > MLP_BN_EVAL_ATOL
        )


Progress = Callable[[str], None]


def tolerances(optimizer: str) -> tuple[Tolerance, Tolerance]:
    """(loss, params and state) tolerances across frameworks for this optimizer."""
    if optimizer in ADAPTIVE:
        return MLP_BN_ADAM_LOSS, MLP_BN_ADAM_PARAMS
    return MLP_BN_LOSS, MLP_BN_PARAMS


def mlp_config(
    options: CompareOptions, optimizer: OptimizerConfig, knobs: Sequence[str] = ()
) -> MlpBnConfig:
    """The MLP's config for these options; `knobs` are the defaults each framework keeps."""
    return MlpBnConfig(
        hidden=options.hidden,
        momentum=options.momentum,
        dense1_bias=optimizer.name not in ADAPTIVE,
        native_defaults=tuple(knobs),
    )


def evaluate(
    impl: Implementation, trajectory: Trajectory, digits: Digits
) -> tuple[np.ndarray, dict[str, float]]:
    """Eval logits and {"loss", "accuracy"} on the test split, after the last step.

    The final canonical params and state are loaded with `from_canonical` (a bitwise round
    trip) and the model is called in eval mode.
    """
    final = trajectory.final()
    params = {k[len("params.") :]: v for k, v in final.items() if k.startswith("params.")}
    state = {k[len("state.") :]: v for k, v in final.items() if k.startswith("state.")}
    native_params, native_state = impl.from_canonical(_as_jax(params), _as_jax(state))
    eval_fn = jax.jit(lambda p, s, x: impl.apply(p, s, x, train=False)[0])
    logits = np.asarray(eval_fn(native_params, native_state, jnp.asarray(digits.x_test)))
    test = Labelled(jnp.asarray(digits.x_test), jnp.asarray(digits.y_test))
    loss = float(mlp_bn_loss(jnp.asarray(logits), test))
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == digits.y_test))
    return logits, {"loss": loss, "accuracy": accuracy}


def train(
    impl: Implementation,
    loop: str,
    config: MlpBnConfig,
    optimizer: OptimizerConfig,
    batches: Labelled,
    seed: int,
) -> Trajectory:
    """Train one implementation in one loop from the canonical init.

    When the config keeps the framework's initial running statistics (`"state"`), the params
    are still the canonical ones and the state is the framework's own, from `impl.init`.
    """
    params, state = canonical_init(config, seed)
    params, state = impl.from_canonical(_as_jax(params), _as_jax(state))
    if config.keeps("state"):
        _, state = impl.init(jax.random.key(seed), jnp.asarray(batches.x[0]))
    return run_loop(
        loop, impl, params, state, optimizer.make(), batches, mlp_bn_loss, mlp_bn_inputs
    )


def _as_jax(values: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v) for k, v in values.items()}


def _max_abs(a: Trajectory, b: Trajectory, group: str) -> float:
    if group == "loss":
        pairs = list(zip(a.loss, b.loss, strict=True))
    else:
        ga, gb = getattr(a, group), getattr(b, group)
        pairs = [(x, y) for k in ga for x, y in zip(ga[k], gb[k], strict=True)]
    return max(float(np.max(np.abs(np.float64(x) - np.float64(y)))) for x, y in pairs)


def run_mlp_compare(
    options: CompareOptions,
    extra: Sequence[ImplementationFactory] = (),
    progress: Progress | None = None,
) -> CompareResult:
    """Train the MLP in every selected framework and loop on digits, and compare.

    Bad options raise `ValueError` or `TypeError` before anything is trained.
    """
    from ._run import CompareResult, _describe

    if options.mode not in MODES:
        raise ValueError(f"mlp-bn: mode must be one of {', '.join(MODES)}, got {options.mode!r}")
    if options.data is not None:
        raise ValueError("--data: mlp-bn trains on scikit-learn's digits; --data is bias-adder's")
    if options.seed_faithful:
        raise ValueError("--seed-faithful applies to the bias adder, not to mlp-bn")
    if options.features is not None and options.features != 64:
        raise ValueError(
            f"mlp-bn: features must be 64 (the digits' 8x8 pixels), got {options.features}"
        )
    names = tuple(MLP_BN_IMPLEMENTATIONS) if options.impls is None else options.impls
    bad_loops = [loop for loop in options.loops if loop not in LOOPS]
    if bad_loops:
        raise ValueError(f"unknown loop {bad_loops[0]!r}; expected one of {', '.join(LOOPS)}")
    lr = LEARNING_RATE if options.lr is None else options.lr
    optimizer = OptimizerConfig(options.optimizer, learning_rate=lr)
    aligned = mlp_config(options, optimizer)
    config = mlp_config(options, optimizer, KNOBS if options.mode == "defaults" else ())
    digits = load_digits_split()
    check_labels("data", digits.y_train, config)
    batch = BATCH if options.batch is None else options.batch
    batches = minibatches(
        digits.x_train,
        digits.y_train,
        batch,
        STEPS if options.steps is None else options.steps,
        options.seed,
    )
    impls = [make(name, config, MODEL) for name in (*names, *options.user_impls)]
    impls += [build(factory, config, repr(factory)) for factory in extra]
    if not impls:
        raise ValueError("no implementation selected; expected at least one")
    if len({impl.name for impl in impls}) != len(impls):
        raise ValueError("two implementations have the same name; names must be unique")

    trajectories: dict[str, Trajectory] = {}
    errors: dict[str, str] = {}
    logits: dict[str, np.ndarray] = {}
    evals: dict[str, dict[str, float]] = {}
    reference = f"{MLP_BN_REFERENCE}/harness"
    if options.mode == "defaults" or MLP_BN_REFERENCE not in names:
        reference = f"{MLP_BN_REFERENCE}/aligned"
        ref_impl = make(MLP_BN_REFERENCE, aligned, MODEL)
        if progress:
            progress(reference)
        trajectories[reference] = train(
            ref_impl, "harness", aligned, optimizer, batches, options.seed
        )
        logits[reference], evals[reference] = evaluate(ref_impl, trajectories[reference], digits)
    for impl in impls:
        for loop in options.loops:
            name = f"{impl.name}/{loop}"
            if loop == "native" and not hasattr(impl, "native_loop"):
                continue
            if progress:
                progress(name)
            try:
                trajectories[name] = train(impl, loop, config, optimizer, batches, options.seed)
                logits[name], evals[name] = evaluate(impl, trajectories[name], digits)
            except Exception as e:  # reported, not raised: a failing framework is a finding
                errors[name] = _describe(e)
    if reference not in trajectories:
        reference = next(iter(trajectories))
    loss_tolerance, tolerance = tolerances(optimizer.name)
    pairs = [
        compare(
            t,
            trajectories[reference],
            tolerance,
            names=(k, reference),
            loss_tolerance=loss_tolerance,
        )
        for k, t in trajectories.items()
        if k != reference
    ]
    eval_diffs = {
        k: float(np.max(np.abs(np.float64(v) - logits[reference])))
        for k, v in logits.items()
        if k != reference
    }
    drift: list[Drift] = []
    if options.mode == "defaults":
        drift = attribute_drift(
            impls,
            trajectories,
            logits,
            evals,
            reference,
            options,
            optimizer,
            batches,
            digits,
            progress,
        )
    resolved: dict[str, Any] = {
        **{k: v for k, v in asdict(options).items() if k not in ("data", "data_source")},
        "impls": list(names),
        "loops": list(options.loops),
        "user_impls": list(options.user_impls),
        "steps": len(batches),
        "batch": int(batches.x.shape[1]),
        "features": config.features,
        "lr": lr,
        "data": "sklearn.datasets.load_digits (stratified 75/25 split, seed 0)",
        "data_dtype": "float32",
        "train_examples": len(digits.y_train),
        "test_examples": len(digits.y_test),
        "mlp": asdict(config),
        "optimizer_hyperparameters": asdict(optimizer),
    }
    return CompareResult(
        resolved,
        trajectories,
        errors,
        reference,
        pairs,
        versions(),
        model=MODEL,
        evals=evals,
        eval_diffs=eval_diffs,
        eval_atol=MLP_BN_EVAL_ATOL,
        drift=[asdict(d) | {"responsible": d.responsible()} for d in drift],
    )


def attribute_drift(
    impls: Sequence[Implementation],
    trajectories: dict[str, Trajectory],
    logits: dict[str, np.ndarray],
    evals: dict[str, dict[str, float]],
    reference: str,
    options: CompareOptions,
    optimizer: OptimizerConfig,
    batches: Labelled,
    digits: Digits,
    progress: Progress | None,
) -> list[Drift]:
    """For each framework: its drift with all defaults, then with one default kept at a time.

    The defaults tried are those the adapter lists in `bn_defaults` (knob -> description);
    the harness loop is used.
    """
    ref = trajectories[reference]
    out: list[Drift] = []

    def measure(
        name: str, knob: str, default: str, traj: Trajectory, lg: np.ndarray, acc: float
    ) -> None:
        out.append(
            Drift(
                name,
                knob,
                default,
                _max_abs(traj, ref, "loss"),
                _max_abs(traj, ref, "state"),
                float(np.max(np.abs(np.float64(lg) - logits[reference]))),
                acc,
            )
        )

    for impl in impls:
        described: dict[str, str] = getattr(impl, "bn_defaults", {})
        key = f"{impl.name}/harness"
        if key in trajectories:
            all_defaults = ", ".join(described) or "-"
            measure(
                impl.name,
                "all",
                all_defaults,
                trajectories[key],
                logits[key],
                evals[key]["accuracy"],
            )
        for knob, default in described.items():
            config = mlp_config(options, optimizer, (knob,))
            one = make(impl.name, config, MODEL) if impl.name in MLP_BN_IMPLEMENTATIONS else None
            if one is None:
                continue
            if progress:
                progress(f"{impl.name} keeping its {knob} default")
            traj = train(one, "harness", config, optimizer, batches, options.seed)
            lg, ev = evaluate(one, traj, digits)
            measure(impl.name, knob, default, traj, lg, ev["accuracy"])
    return out
