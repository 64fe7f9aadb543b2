"""`run_compare`: one comparison run of a built-in model or the user's own, by options."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ._registry import (
    DEFAULT_MODEL,
    implementations,
    is_registered,
    load_factory,
    load_spec,
    versions,
)
from .core import (
    CompareResult,
    ImplementationFactory,
    Measured,
    ModelSpec,
    Progress,
    RunOptions,
    build,
    measure_tolerances,
    run_model,
    setup_run,
)


@dataclass(frozen=True)
class CompareOptions(RunOptions):
    """Every option of `state-rosetta compare`: the run's own ([`RunOptions`][]: loops,
    steps, optimizer, tolerance, devices, ...) and which model and implementations to run
    (the defaults reproduce the Flax page's loop).

    **Arguments** (besides `RunOptions`'):

    - `model`: a built-in model's name (`"bias-adder"`, `"mlp-bn"`, ...), `FILE.py:ATTR` or
      `MODULE:ATTR` naming a [`ModelSpec`][], or a spec.
    - `impls`: the built-in model's registered implementations to run (default: all).
    - `user_impls`: more implementations, as `MODULE:ATTR` or `FILE.py:ATTR`.
    """

    model: str | ModelSpec = DEFAULT_MODEL
    impls: tuple[str, ...] | None = None
    user_impls: tuple[str, ...] = ()

    def run_options(self) -> RunOptions:
        """The options of the run itself, without the model and implementations."""
        fields = {f.name for f in dataclasses.fields(RunOptions)}
        return RunOptions(**{name: getattr(self, name) for name in fields})


@dataclass(frozen=True)
class Resolved:
    """What options name, resolved once: the spec, the implementations by label, the
    registered names run, and the spec's reference implementation (to train aside)."""

    spec: ModelSpec
    factories: list[tuple[str, ImplementationFactory]]
    names: tuple[str, ...]
    reference_factory: ImplementationFactory | None


def resolve(options: CompareOptions, extra: Sequence[ImplementationFactory] = ()) -> Resolved:
    """Load the model's spec (once) and its implementations; raises `ValueError` naming an
    unknown implementation."""
    spec = load_spec(options.model)
    registered = is_registered(options.model) or (
        isinstance(options.model, ModelSpec)
        and is_registered(spec.name)
        and load_spec(spec.name) is spec
    )
    registry = implementations(spec.name) if registered else {}
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
    return Resolved(spec, factories, names, reference_factory)


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
    r = resolve(options, extra)
    result = run_model(
        r.spec,
        r.factories,
        options.run_options(),
        reference_factory=r.reference_factory,
        versions=versions(),
        progress=progress,
    )
    result.config.update(impls=list(r.names), user_impls=list(options.user_impls))
    return result


def suggest_tolerances(
    options: CompareOptions, extra: Sequence[ImplementationFactory] = ()
) -> list[Measured]:
    """Measure the model's rounding floor from its reference implementation alone (see
    `measure_tolerances`): its scan, its step op by op, and its oracle, each against its
    jitted harness loop. The reference is `--reference`'s implementation, the spec's, or
    the first one."""
    r = resolve(options, extra)
    if not r.factories:
        raise ValueError("no implementation selected; expected at least one")
    run = setup_run(r.spec, options.run_options())
    by_label = dict(r.factories)
    built = {build(label, f, run.config, r.spec).name: (label, f) for label, f in r.factories}
    wanted = options.reference.partition("/")[0] if options.reference else r.spec.reference
    if wanted in built:
        reference = built[wanted]
    elif wanted is not None and wanted in by_label:
        reference = (wanted, by_label[wanted])
    else:
        reference = r.factories[0]
    return measure_tolerances(r.spec, run, reference)
