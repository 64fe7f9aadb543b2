"""Transplant: save in framework A under canonical names, restore into B, train B on.

A's params, state and optimizer state are written under the model's canonical names; optax
states that mirror the params tree (momentum's trace, Adam's moments) go through the same
names, and the rest (Adam's step count) under its path in the optax state, which is the same
in every framework because the optimizer is the same optax transformation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import (
    PairResult,
    Trajectory,
    canonical_opt_state,
    compare,
    opt_state_from_canonical,
)
from ._case import Built, Case
from ._errors import CheckpointError
from ._store import CheckpointStore
from ._trainers import HarnessTrainer


def portable(trainer: HarnessTrainer) -> dict[str, Any]:
    """A harness trainer's params, state and optimizer state under canonical names."""
    cparams, cstate = trainer.canonical()
    return {
        "params": dict(cparams),
        "state": dict(cstate),
        # Flat optax paths, the moments under canonical names: "0.mu.dense1.kernel".
        "opt_state": canonical_opt_state(
            trainer.impl, trainer.params, trainer.state, trainer.opt_state
        ),
    }


def _group(leaves: Mapping[str, np.ndarray], prefix: str) -> dict[str, jax.Array]:
    return {k[len(prefix) :]: jnp.asarray(v) for k, v in leaves.items() if k.startswith(prefix)}


@dataclass
class Carried:
    """What a transplant carried: the state names it could not carry, and B's own."""

    not_carried: list[str] = field(default_factory=list)
    own: list[str] = field(default_factory=list)


def load_portable(trainer: HarnessTrainer, leaves: Mapping[str, np.ndarray]) -> Carried:
    """Load canonical leaves (`CheckpointStore.leaves` of a `portable` save) into `trainer`.

    Params and optimizer state must all be there (a [`CheckpointError`][] names the first
    one missing). State that B has no name for is not carried, and state A had no name for
    keeps B's own initial value; the returned [`Carried`][] lists both.
    """
    impl = trainer.impl
    params = _group(leaves, "params.")
    fresh_params, fresh_state = trainer.canonical()
    missing = sorted(set(fresh_params) - set(params))
    if missing or set(params) != set(fresh_params):
        name = missing[0] if missing else sorted(set(params) - set(fresh_params))[0]
        raise CheckpointError(f"transplant into {impl.name}: params {name!r} do not match")
    saved_state = _group(leaves, "state.")
    carried = Carried(
        not_carried=sorted(set(saved_state) - set(fresh_state)),
        own=sorted(set(fresh_state) - set(saved_state)),
    )
    state = {k: saved_state.get(k, jnp.asarray(v)) for k, v in fresh_state.items()}
    native_params, native_state = impl.from_canonical(params, state)
    try:
        opt_state = opt_state_from_canonical(
            impl, native_params, native_state, trainer.tx, _group(leaves, "opt_state."), state
        )
    except KeyError as e:
        raise CheckpointError(
            f"transplant into {impl.name}: no optimizer state 'opt_state.{e.args[0]}'"
        ) from None
    trainer.restore({"params": native_params, "state": native_state, "opt_state": opt_state})
    return carried


@dataclass
class Transplanted:
    """One ordered pair: A saved after `at` steps, B restored it and trained on."""

    source: str
    target: str
    pair: PairResult | None
    carried: Carried
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.pair is not None and self.pair.ok

    def verdict(self) -> str:
        if self.error is not None:
            return "failed"
        assert self.pair is not None
        if self.pair.bitwise:
            return "bitwise"
        if self.pair.agree:
            return (
                f"{self.pair.max_ulp} ULP"
                if self.pair.max_ulp <= 64
                else f"{self.pair.max_abs:.1e}"
            )
        return "expected" if self.pair.expected else "DIFFERS"

    def to_json(self) -> dict[str, Any]:
        pair = self.pair
        return {
            "from": self.source,
            "into": self.target,
            "verdict": self.verdict(),
            "bitwise": None if pair is None else pair.bitwise,
            "max_abs": None if pair is None else pair.max_abs,
            "max_ulp": None if pair is None else pair.max_ulp,
            "tolerance": None if pair is None else pair.tolerance.describe(),
            "first_divergence": None
            if pair is None or pair.first_divergence is None
            else str(pair.first_divergence),
            "not_carried": self.carried.not_carried,
            "own": self.carried.own,
            "error": self.error,
            "ok": self.ok,
        }


def transplant(
    cases: Sequence[Case], at: int, *, workdir: str | Path | None = None, progress: Any = None
) -> list[Transplanted]:
    """Every ordered pair (A, B) of `cases` (one per implementation, harness loop, same
    settings), the diagonal included: A trains `at` steps and saves canonically, B restores
    and trains on; B's steps are compared with A's own continuation within the bounds the
    model states for B against A."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="state-rosetta-transplant-") as scratch:
            return transplant(cases, at, workdir=scratch, progress=progress)
    root = Path(workdir)
    built = {c.implementation: Built(replace(c, loop="harness")) for c in cases}
    names = list(built)
    stop = cases[0].steps
    own: dict[str, Trajectory] = {}
    for name, b in built.items():
        if progress:
            progress(f"{name}: train {at} steps, save under canonical names")
        trainer = b.trainer()
        assert isinstance(trainer, HarnessTrainer)
        b.train(trainer, 0, at)
        with CheckpointStore(root / name, create=True) as store:
            identity = {**b.identity, "loop": "canonical"}
            store.save(at, portable(trainer), {**identity, "case": b.case.to_json()})
        own[name] = b.train(trainer, at, stop)
    results = []
    for target in names:
        b = built[target]
        trainer = b.trainer()
        assert isinstance(trainer, HarnessTrainer)
        tolerances = b.spec.tolerances_for(b.setup.config, b.setup.optimizer)
        for source in names:
            if progress:
                progress(f"{source} -> {target}")
            try:
                with CheckpointStore(root / source) as store:
                    meta = store.meta()
                    if meta.get("model") != b.spec.name or meta.get("loop") != "canonical":
                        raise CheckpointError(
                            f"checkpoint {store.directory}: not a canonical save of {b.spec.name}"
                        )
                    carried = load_portable(trainer, store.leaves())
                mine = b.train(trainer, at, stop)
                tolerance, loss_tolerance = tolerances.for_pair(
                    f"{target}/harness", f"{source}/harness"
                )
                pair = compare(
                    mine,
                    own[source],
                    tolerance,
                    names=(f"{source}->{target}", f"{source}/continued"),
                    loss_tolerance=loss_tolerance,
                )
                results.append(Transplanted(source, target, pair, carried))
            except Exception as e:
                first = str(e).splitlines()[0] if str(e) else ""
                results.append(
                    Transplanted(source, target, None, Carried(), f"{type(e).__name__}: {first}")
                )
    return results
