"""Which trajectories are compared with which, by what bound, and what a parting means.

Loop for loop: an implementation's `scan` is compared with the reference's `scan`, its
`native` with the reference's `native`, its `harness` with the reference's `harness`, each
by the bound the spec declares for two implementations. Within one implementation, each
other loop is compared with the loop of the reference trajectory (the harness by default):
a loop check, by the spec's loop bound (its `scan` bound, or a trajectory's own), and
reported without failing the run when the spec declares none. So a bound between two loops
never judges two implementations, and a model whose reference scans differently from how it
steps does not fail a run that declared nothing about it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ._divergence import PairResult, Parting
from ._tolerance import ORACLE_KEY, UNDECLARED, Tolerance, Tolerances


@dataclass(frozen=True)
class Plan:
    """One pair to compare: `a` against the reference `b`, its bounds, kind and judgement."""

    a: str
    b: str
    tolerance: Tolerance
    loss_tolerance: Tolerance | None
    kind: str
    judged: bool = True


def _split(key: str) -> tuple[str, str]:
    impl, _, loop = key.rpartition("/")
    return impl, loop


def plan_pairs(
    keys: Sequence[str],
    reference: str,
    tolerances: Tolerances,
    *,
    aside: bool = False,
    devices: Tolerance | None = None,
) -> list[Plan]:
    """The pairs of a run whose trajectories are `keys` and whose reference is `reference`.

    **Arguments:**

    - `keys`: every trajectory that trained (`"impl/loop"`, and `ORACLE_KEY`).
    - `reference`: the reference trajectory's key.
    - `tolerances`: the model's, for this run.
    - `aside`: the reference is a run of its own (another mode, or one device): every
      trajectory is compared with it, by its pair's bound.
    - `devices`: the bound of a data-parallel run against one device, where it replaces the
      pair's own.
    """
    plans: list[Plan] = []
    ref_impl, ref_loop = _split(reference)
    present = set(keys)
    for key in keys:
        if key == reference:
            continue
        if key == ORACLE_KEY or aside:
            tolerance, loss = tolerances.for_pair(key, reference)
            kind = "oracle" if key == ORACLE_KEY else "across"
            if devices is not None and key != ORACLE_KEY and not tolerance.expected:
                tolerance, loss = devices, None
            plans.append(Plan(key, reference, tolerance, loss, kind))
            continue
        impl, loop = _split(key)
        if impl != ref_impl and f"{ref_impl}/{loop}" in present:
            other = f"{ref_impl}/{loop}"
            plans.append(Plan(key, other, *tolerances.for_pair(key, other), "across"))
        base = f"{impl}/{ref_loop}"
        if loop != ref_loop and base in present:
            tolerance, loss = tolerances.for_pair(key, base)
            judged = _declares_loop_bound(tolerances, key, base)
            plans.append(Plan(key, base, tolerance, loss, "loop", judged=judged))
    return plans


def _declares_loop_bound(tolerances: Tolerances, a: str, b: str) -> bool:
    """Does the spec bound these two loops of one implementation? A scan against another
    loop by its `scan` bound, a trajectory by its own bound, any other two loops by `same`
    when the spec declares it (not the undeclared bitwise default)."""
    if a in tolerances.trajectories or b in tolerances.trajectories:
        return True
    if "scan" in (_split(a)[1], _split(b)[1]) and _split(a)[1] != _split(b)[1]:
        return tolerances.scan is not None
    return tolerances.same != UNDECLARED


def explain_partings(
    pairs: Sequence[PairResult], lockstep: Mapping[str, PairResult], reference: str
) -> list[PairResult]:
    """Attach the lockstep to its pairs, and say why a pair that parts running free still
    agrees, where it does.

    - Two harness loops: they agree when every lockstep step is within the pair's bound;
      their free-running parting is then rounding, amplified.
    - Two other loops (native, scan) of two implementations: they agree when each follows
      its own harness loop within its bound and the harness loops agree in lockstep.
    """
    by_key = {(p.a, p.b): p for p in pairs}
    ref_impl, ref_loop = _split(reference)
    out: list[PairResult] = []
    for p in pairs:
        impl, loop = _split(p.a)
        harness = f"{impl}/{ref_loop}"
        ls = lockstep.get(p.a if loop == ref_loop else harness)
        if p.kind == "across" and loop == ref_loop and ls is not None:
            p = replace(p, lockstep=ls)  # its verdict: a local error beyond the bound is a bug
            if not p.agree and ls.agrees_locally:
                p = replace(p, parting=Parting(p.first_divergence.step, _local(ls)))  # type: ignore[union-attr]
        elif p.kind == "across" and not p.agree and ls is not None and ls.agrees_locally:
            own = by_key.get((p.a, harness))
            theirs = by_key.get((p.b, f"{ref_impl}/{ref_loop}"))
            if own is not None and own.agree and theirs is not None and theirs.agree:
                # Both follow their harness loops within the loops' bound (bitwise where the
                # spec declares none), so this pair parts as the harness pair does.
                reason = (
                    f"each follows its own {ref_loop} loop within its bound, and the {ref_loop} "
                    f"loops agree step by step ({_local(ls)})"
                )
                p = replace(p, parting=Parting(p.first_divergence.step, reason))  # type: ignore[union-attr]
        out.append(p)
    return out


def _local(ls: PairResult) -> str:
    if ls.isolated:
        steps = ", ".join(str(s) for s in ls.failing_steps)
        return (
            f"every lockstep step agrees locally but isolated step(s) {steps}, each followed "
            "by agreeing steps: a value that rounding put across a threshold (a relu's zero, "
            "a max), rounding, amplified"
        )
    return (
        f"every lockstep step agrees locally, within |diff| {ls.max_abs:.3g} "
        f"({ls.max_ulp_at_scale:.3g} ULP at the leaves' scale): rounding, amplified"
    )
