"""Cross-validation for the user's own model, from pytest: run, then assert agreement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._compare import describe_divergence
from ._harness import LOOPS
from ._loader import load_object
from ._options import RunOptions
from ._protocol import ImplementationFactory
from ._result import CompareResult
from ._run import run_model
from ._spec import ModelSpec
from ._tolerance import Tolerance, parse_tolerance


def cross_validate(
    spec: ModelSpec,
    implementations: Sequence[ImplementationFactory | str],
    *,
    steps: int | None = None,
    optimizer: str = "sgd",
    lr: float | None = None,
    loops: Sequence[str] = LOOPS,
    seed: int = 0,
    batch: int | None = None,
    mode: str | None = None,
    reference: str | None = None,
    tolerance: Tolerance | str | None = None,
    options: Mapping[str, Any] | None = None,
    lockstep: bool = True,
    keep: str = "auto",
) -> CompareResult:
    """Train two or more implementations of `spec` and compare them step by step.

    **Arguments:**

    - `spec`: the model, a [`ModelSpec`][].
    - `implementations`: factories (`config -> implementation`), or `"MODULE:ATTR"` /
      `"FILE.py:ATTR"` strings naming them. The first is the reference unless `reference`
      names another.
    - `steps`, `batch`, `seed`, `mode`: as for `state-rosetta compare` (`None`: the spec's).
    - `optimizer`, `lr`: the optax optimizer's name and learning rate.
    - `loops`: which loops to run for each implementation.
    - `reference`: an implementation's name or a trajectory key (`"impl/loop"`).
    - `tolerance`: a [`Tolerance`][] or its text (`"bitwise"`, `"4ulp"`, `"1e-6"`) that
      judges every pair instead of the spec's tolerances.
    - `options`: the model's own options, by key.
    - `lockstep`: also run the harness loops in lockstep (their verdict is the pair's).
    - `keep`: what to keep of the steps (`"auto"`, `"trajectories"`, `"summaries"`).

    **Returns:** the [`CompareResult`][]; `result.agree` says whether all agree. See
    [`assert_cross_validated`][] for the assert-style form.
    """
    factories: list[tuple[str, ImplementationFactory]] = []
    for impl in implementations:
        if isinstance(impl, str):
            factories.append((impl, load_object(impl, option="implementation")))
        else:
            factories.append((getattr(impl, "__name__", repr(impl)), impl))
    if isinstance(tolerance, str):
        tolerance = parse_tolerance(tolerance, reason="given to cross_validate")
    run_options = RunOptions(
        loops=tuple(loops),
        steps=steps,
        batch=batch,
        optimizer=optimizer,
        lr=lr,
        seed=seed,
        mode=mode,
        values=dict(options or {}),
        reference=reference,
        tolerance=tolerance,
        lockstep=lockstep,
        keep=keep,
    )
    return run_model(spec, factories, run_options)


def check_agreement(result: CompareResult) -> None:
    """Raise `AssertionError` unless every trajectory of `result` agrees with the reference.

    The message names each failing pair; for a divergence, the first step and leaf where it
    parts from its reference (in lockstep, for two harness loops), both values and their
    distances.
    """
    lines = []
    for pair in result.pairs:
        if pair.ok:
            continue
        ls = pair.lockstep
        if ls is not None and ls.first_divergence is not None:
            lines.append(
                f"{pair.a} diverges from {pair.b} in lockstep (one step from the same values) "
                f"at {ls.first_divergence.describe()} (tolerance: {ls.tolerance.describe()})"
            )
            if ls.first_divergence.layers is not None:  # where inside the step it starts
                lines.append(f"{pair.a} {ls.first_divergence.layers.note}")
        elif pair.first_divergence is not None:
            detail = describe_divergence(
                result.trajectories.get(pair.a),
                result.trajectories.get(pair.b),
                pair.first_divergence,
            )
            lines.append(
                f"{pair.a} diverges from {pair.b} at {detail} "
                f"(tolerance: {pair.tolerance.describe()})"
            )
    for name, error in result.errors.items():
        lines.append(f"{name} failed: {error}")
    expected = {p.a for p in result.pairs if p.tolerance.expected}
    for name, diff in result.eval_diffs.items():
        atol = result.eval_atol_for(name)
        if atol is not None and diff > atol and name not in expected:
            lines.append(f"{name}: held-out outputs {diff:.3g} from the reference's (atol {atol})")
    if lines:
        head = f"{result.model}: {len(lines)} of {len(result.pairs) + len(result.errors)} disagree"
        raise AssertionError("\n".join([head, *lines]))


def assert_cross_validated(
    spec: ModelSpec, implementations: Sequence[ImplementationFactory | str], **kwargs: Any
) -> CompareResult:
    """[`cross_validate`][], then [`check_agreement`][]: for a porter's own test suite.

    Takes the same arguments as `cross_validate`; returns the result when all agree.
    """
    result = cross_validate(spec, implementations, **kwargs)
    check_agreement(result)
    return result
