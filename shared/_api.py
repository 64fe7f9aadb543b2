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
    ModelSpec,
    Progress,
    RunOptions,
    run_model,
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
    result = run_model(
        spec,
        factories,
        options.run_options(),
        reference_factory=reference_factory,
        versions=versions(),
        progress=progress,
    )
    result.config.update(impls=list(names), user_impls=list(options.user_impls))
    return result
